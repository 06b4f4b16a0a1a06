"""A surge run against the lab cluster (marker lab): seeded through an SSH tunnel to pgbouncer,
Locust master and workers on the spec's loadgen server, load through the load balancers; checks
the report, the gates (exit code = verdict) and a calibration's measurements file.

Needs the lab up with the platform deployed (`freehold up`: roles lb and app of issue 6), which
tests/lab/test_platform.py does first in a whole run (file order); it is skipped, saying which
part is missing, otherwise. Bounded: about 3 minutes of load.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.lab.cli import LabSecrets

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "inventories" / "lab.yaml"


def freehold(*args: str, timeout: float = 600, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, env=env)


def _ready(url: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the lab's self-signed certificate
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5, context=ctx) as r:
            return r.status == 200
    except OSError:
        return False


def platform_missing(spec_path: Path = SPEC, roles_dir: Path = REPO / "roles") -> str | None:
    """Why the platform is not there to load on the lab (None when it answers). Checked in
    order: the roles' code, the spec's servers for them, the lab up, the app answering; never
    boots or deploys anything just to find out."""
    from deploy.lab import Lab
    from deploy.spec import load_spec

    no_code = [r for r in ("app", "lb") if not (roles_dir / r / "__init__.py").exists()]
    if no_code:
        return (f"roles {', '.join(no_code)} (issue 6) are not in this checkout: there is no "
                "app to load on the lab yet")
    spec = load_spec(spec_path)
    no_server = [r for r in ("app", "lb", "loadgen", "pgbouncer") if not spec.servers_with_role(r)]
    if no_server:
        return f"{spec_path.name} has no server with role {', '.join(no_server)}"
    if not Lab.from_spec(spec_path).is_up():
        return f"the lab of {spec_path.name} is not up: `freehold lab up` then `freehold up`"
    from deploy.loadtest.target import resolve_target

    url = resolve_target(str(spec_path)).url
    if not _ready(url):
        return f"the app is not deployed on the lab (no answer at {url}/readyz): `freehold up`"
    return None


@pytest.fixture(scope="module")
def deployed_lab() -> str:
    from deploy.loadtest.target import resolve_target

    why = platform_missing()
    if why:
        pytest.skip(why)
    return resolve_target(str(SPEC)).url


def test_skips_only_for_a_missing_platform(tmp_path: Path) -> None:
    """The reasons the surge test may skip, each for the part really missing."""
    roles = tmp_path / "roles"
    (roles / "app").mkdir(parents=True)
    (roles / "app" / "__init__.py").write_text("")
    assert "roles lb (issue 6)" in (platform_missing(SPEC, roles) or "")
    (roles / "lb").mkdir()
    (roles / "lb" / "__init__.py").write_text("")
    no_loadgen = tmp_path / "lab.yaml"
    no_loadgen.write_text(SPEC.read_text().replace("loadgen", "monitoring"))
    assert platform_missing(no_loadgen, roles) == "lab.yaml has no server with role loadgen"
    why = platform_missing(SPEC, roles)
    from deploy.lab import Lab

    if not Lab.from_spec(SPEC).is_up():
        assert why and "is not up" in why
    else:  # up: either the app answers (None) or the reason is that it is not deployed
        assert why is None or "not deployed" in why


def test_surge_on_the_lab(deployed_lab: str, tmp_path: Path, lab_secrets: LabSecrets) -> None:
    roster = tmp_path / "roster.json"
    r = freehold("loadtest", "seed", str(SPEC), "--accounts", "5000", "--members", "500",
                 "--roster", str(roster), "--secrets", str(lab_secrets.path), "--json",
                 env=lab_secrets.env())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["members"] == 500
    out = tmp_path / "surge"
    r = freehold("loadtest", "run", str(SPEC), "--shape", "surge", "--duration", "2m",
                 "--steps", "4", "--max-users", "300", "--workers", "1", "--roster",
                 str(roster), "--out", str(out))
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads((out / "summary.json").read_text())
    assert r.returncode == (0 if doc["passed"] else 1)
    assert [s["mark"] for s in doc["steps"]][::3] == ["4M", "10M"]
    assert doc["generator_cpu"]["servers"] == ["c3"]  # the spec's loadgen server
    assert doc["scale"]["target_app_cores"] == 2  # a3 and b3
    assert all(s["requests"] > 0 for s in doc["steps"])
    assert (out / "report.html").exists() and (out / "chart.png").exists()
    if not doc["passed"]:
        assert doc["first_failed_step"] in r.stdout
    dest = tmp_path / "calibration.json"
    r = freehold("loadtest", "calibrate", str(SPEC), "--duration", "60s", "--steps", "6",
                 "--roster", str(roster), "--write", str(dest), "--out", str(tmp_path / "cal"))
    assert r.returncode in (0, 1), r.stderr
    cal = json.loads(dest.read_text())
    assert cal["target"]["server_url"].startswith("http://198.18.1.12")
    assert cal["rps_per_core"] == pytest.approx(cal["rps_per_server"] / 1, abs=0.1)
    assert r.returncode == (0 if cal["rps_per_server"] > 0 else 1)
