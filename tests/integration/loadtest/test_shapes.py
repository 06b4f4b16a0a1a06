"""Short bounded runs of each shape against the app served locally (real Locust processes)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.integration.loadtest.conftest import LtEnv, freehold

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def roster(lt_env: LtEnv) -> Path:
    path = lt_env.file("roster-shapes.json")
    r = freehold("loadtest", "seed", lt_env.url, "--accounts", "300", "--dsn", lt_env.dsn,
                 "--roster-only", "--members", "150", "--roster", str(path))
    assert r.returncode == 0, r.stderr
    return path


def run(lt_env: LtEnv, roster: Path, out: Path, *args: str) -> tuple[int, str, dict]:
    r = freehold("loadtest", "run", lt_env.url, "--roster", str(roster), "--profile",
                 str(lt_env.file("profile.yaml")), "--out", str(out), "--app-cores", "0.2",
                 *args)
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout, json.loads((out / "summary.json").read_text())


def check_reports(out: Path) -> None:
    assert (out / "report.html").read_text().lower().startswith("<!doctype html")
    assert (out / "chart.png").read_bytes().startswith(PNG)
    assert (out / "locust_stats.csv").exists() and (out / "locust_stats_history.csv").exists()


def test_surge_steps_from_4m_to_10m_scaled_and_gated(lt_env: LtEnv, roster: Path,
                                                     tmp_path: Path) -> None:
    # steps of 10 s (40 s: a 10-s lead-in, then 3 steps): Locust workers report every 3 s, and
    # a 5-s step (1.5 s warm-up, a 3.5-s window) once held no report at all ("no requests
    # completed" at step 4M in CI)
    code, out, doc = run(lt_env, roster, tmp_path, "--shape", "surge", "--duration", "40s",
                         "--steps", "3", "--max-users", "40", "--workers", "1", "--slo",
                         str(lt_env.file("loose.yaml")))
    assert code == 0 and doc["passed"] is True, out
    check_reports(tmp_path)
    steps = doc["steps"]
    assert [s["name"] for s in steps] == ["4M", "7M", "10M"]
    assert [s["mark"] for s in steps] == ["4M", "", "10M"]
    f = doc["scale"]["factor"]
    # 0.2 app cores / (peak of 10 M accounts / 1000 req/s per core)
    assert f == pytest.approx(0.2 / doc["scale"]["production_app_cores"])
    for s in steps:
        assert s["simulated_accounts"] == round(s["accounts"] * f)
        assert s["requests"] > 0 and s["users"] > 0
    assert steps[2]["target_rps"] == pytest.approx(steps[0]["target_rps"] * 2.5, rel=1e-3)
    assert steps[0]["users"] < steps[2]["users"]
    # the home feed is the most requested endpoint, as in the profile's mix
    assert max(steps[2]["endpoints"], key=lambda e: e["requests"])["name"] == \
        "GET /timelines/home"
    assert "scale" in out and "4M" in out and "10M" in out and "pass" in out


def test_spike_floods_sign_ups_and_a_breached_gate_exits_1(lt_env: LtEnv, roster: Path,
                                                           tmp_path: Path) -> None:
    with psycopg.connect(lt_env.dsn) as conn:
        before = conn.execute("SELECT count(*) FROM accounts WHERE username LIKE 'nc_%'"
                              ).fetchone()[0]
    code, out, doc = run(lt_env, roster, tmp_path, "--shape", "spike", "--duration", "16s",
                         "--max-users", "40", "--workers", "1", "--slo",
                         str(lt_env.file("strict.yaml")))
    assert code == 1 and doc["passed"] is False
    assert doc["first_failed_step"] == "before"
    assert "first failed at step before" in out and "FAIL" in out
    check_reports(tmp_path)
    flood = doc["steps"][1]
    assert flood["name"] == "sign-up flood"
    assert any(e["name"] == "POST /accounts" and e["requests"] > 0 for e in flood["endpoints"])
    with psycopg.connect(lt_env.dsn) as conn:
        after = conn.execute("SELECT count(*) FROM accounts WHERE username LIKE 'nc_%'"
                             ).fetchone()[0]
    assert after > before


def test_soak_holds_the_10m_peak_in_windows_json(lt_env: LtEnv, roster: Path,
                                                 tmp_path: Path) -> None:
    r = freehold("loadtest", "run", lt_env.url, "--roster", str(roster), "--profile",
                 str(lt_env.file("profile.yaml")), "--out", str(tmp_path), "--app-cores", "0.1",
                 "--shape", "soak", "--duration", "10s", "--steps", "2", "--max-users", "20",
                 "--workers", "0", "--slo", str(lt_env.file("loose.yaml")), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # exactly one JSON document
    assert doc["shape"] == "soak" and len(doc["steps"]) == 2
    assert {s["accounts"] for s in doc["steps"]} == {10_000_000}
    assert any("soak: p99 first window" in n for n in doc["notes"])
    check_reports(tmp_path)
