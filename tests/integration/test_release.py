"""The release carries only the app: its id ignores the operator's code, and the wheel built
from this tree holds the `app` package and its data, nothing of `deploy`, `roles` or
`loadgen` (built for real with pip, as a deploy builds it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from freehold.deploy.artifacts.release import REPO, app_wheel, release_id

PINS = {"fastapi": "0.1"}


def copy_tree(dest: Path) -> Path:
    for name in ("app", "deploy", "roles", "loadgen"):
        shutil.copytree(REPO / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_operator_code_cuts_no_release(tmp_path: Path) -> None:
    root = copy_tree(tmp_path / "tree")
    first = release_id(root, PINS)
    for edited in ("deploy/capacity/model.py", "roles/redis/config.py", "loadgen/shapes.py",
                   "app/dev.py"):
        with (root / edited).open("a") as f:
            f.write("\n# edited\n")
        assert release_id(root, PINS) == first, edited
    with (root / "app" / "settings.py").open("a") as f:
        f.write("\n# edited\n")
    assert release_id(root, PINS) != first


def test_the_wheel_holds_the_app_alone(tmp_path: Path) -> None:
    wheel = app_wheel(REPO, tmp_path / "release")
    assert wheel.name.startswith("freehold_app-")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"freehold"}
    assert {n.split("/")[1] for n in names if n.startswith("freehold/")} == {"app"}
    assert "freehold/__init__.py" not in names  # a namespace, shared with the operator's install
    for data in ("freehold/app/migrations/0001_schema.sql", "freehold/app/web/templates/base.html",
                 "freehold/app/web/static/app.css", "freehold/app/api/fastpath.py"):
        assert data in names
    assert "freehold/app/dev.py" not in names
    # it installs and imports on its own (dependencies from this venv, no operator code)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)],
                   check=True, timeout=120)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import freehold.app.main as m, "
             "freehold.app.worker, freehold.app.db; "
             "assert m.__file__.startswith(sys.argv[1]), m.__file__")
    out = subprocess.run([sys.executable, "-I", "-c", probe, str(target)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-800:]
