"""`freehold loadtest calibrate`: rising load on one app server, stop at the first breach,
the highest passing requests/s written per server, per nominal core and per app CPU-second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.loadtest.conftest import LtEnv, freehold


def test_calibrate_stops_at_the_first_breach_and_writes_measurements(
        lt_env: LtEnv, tmp_path: Path) -> None:
    roster = lt_env.file("roster-cal.json")
    r = freehold("loadtest", "seed", lt_env.url, "--accounts", "300", "--dsn", lt_env.dsn,
                 "--roster-only", "--members", "100", "--roster", str(roster))
    assert r.returncode == 0, r.stderr
    # p99 is judged only on endpoints with >= 40 requests in a step: the quiet first steps
    # pass, and the step where the home feed crosses 40 requests breaks the 1 ms limit.
    slo = tmp_path / "slo.yaml"
    slo.write_text("error_rate_max: 0.5\nendpoint_error_rate_max: 1.0\nmin_requests: 40\n"
                   "p99_ms: {default: 1}\n")
    dest = tmp_path / "measurements" / "calibration.json"
    r = freehold("loadtest", "calibrate", lt_env.url, "--roster", str(roster), "--profile",
                 str(lt_env.file("profile.yaml")), "--slo", str(slo), "--duration", "30s",
                 "--steps", "8", "--start-users", "2", "--factor", "2", "--app-cores", "2",
                 "--workers", "0", "--write", str(dest), "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(dest.read_text())
    steps = doc["steps"]
    assert doc["slo_broken"] is True and not steps[-1]["passed"]
    assert all(s["passed"] for s in steps[:-1]) and len(steps) >= 2
    assert len(steps) < 8  # stopped early, not run to the end
    assert [s["users"] for s in steps] == sorted(s["users"] for s in steps)
    best = max(s["rps"] for s in steps if s["passed"])
    assert doc["rps_per_server"] == round(best, 1)
    # per nominal core from the unrounded figure: within rounding of the rounded one halved
    assert doc["rps_per_nominal_core"] == pytest.approx(best / 2, abs=0.051)
    # the app's own CPU, found by the port it listens on (psutil over its process tree),
    # accounted over every step's measured window, with what else was busy
    best_step = doc["best_step"]
    assert all(s["app_cpu_s"] is not None and "machine" in s["cores_busy"] for s in steps)
    assert "process tree of pid" in doc["cpu_accounting"]["groups"]["app"]
    assert doc["cpu_accounting"]["error_count"] == 0
    if best_step["rps_per_app_cpu"]:  # enough app CPU in the best step to divide by
        assert doc["rps_per_core"] == pytest.approx(
            best_step["requests"] / best_step["app_cpu_s"], rel=0.01)
        assert doc["rps_per_core_basis"].startswith("requests per app CPU-second")
    else:
        assert doc["rps_per_core"] == doc["rps_per_nominal_core"]
        assert "too few to divide by" in doc["rps_per_core_basis"]
    assert doc["target"]["server_url"] == lt_env.url and doc["target"]["server_cores"] == 2
    assert doc["measured_at"] and doc["slo"]["min_requests"] == 40
    # the run header (issue 18, item 11): the code measured, the settings, the durability
    run = doc["run"]
    assert len(run["commit"]) == 40 and isinstance(run["dirty"], bool)
    assert run["script"] == "deploy/loadtest/calibrate.py"
    assert run["settings"]["factor"] == 2 and run["settings"]["start_users"] == 2
    assert run["durability"].startswith("not read: the target is a URL")
    assert "written to" in r.stdout and "per core" in r.stdout
