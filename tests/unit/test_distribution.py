"""The installed distribution (issue 19): one `freehold` namespace at the top of site-packages,
the four folders under it (setup.py's package-dir), with their data files (templates,
migrations, profiles); nothing generic such as `app` or `deploy` beside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_puts_only_freehold_at_the_top(tmp_path: Path) -> None:
    # built from a copy (a build leaves build/ and *.egg-info where it runs), with the venv's
    # setuptools: no download, the check is on the mapping, not on the build backend
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "runs", "*.pyc")
    for folder in ("app", "deploy", "roles", "loadgen"):
        shutil.copytree(ROOT / folder, src / folder, ignore=skip)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(tmp_path / "out"), str(src)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "out").glob("freehold-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"freehold", wheel.name.split("-")[0] + "-"
                                               + wheel.name.split("-")[1] + ".dist-info"}
    assert not any(n.startswith("freehold/__init__") for n in names)  # a namespace: freehold-app
    tops = {n.split("/")[1] for n in names if n.startswith("freehold/")}
    assert tops == {"app", "deploy", "roles", "loadgen"}
    for data in ("freehold/app/migrations/0001_schema.sql", "freehold/roles/lb/templates/"
                 "haproxy.cfg.j2", "freehold/loadgen/profiles/default.yaml",
                 "freehold/app/web/templates/base.html"):
        assert data in names, data
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"freehold = freehold.deploy.cli:main" in entry
