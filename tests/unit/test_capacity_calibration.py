"""`freehold capacity` sizes the app tier only from a whole-mix measurement (issue 18, item 10):
without the calibration file it refuses with one line saying how to calibrate, or, with
--pessimistic, plans with the profile's cited pessimistic figure and says so loudly. The
single-endpoint home-feed figure (benchmarks/results/app_hotpaths.json) is never a stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from freehold.deploy.capacity.inputs import DEFAULT_PROFILE, ROOT
from freehold.deploy.cli import app

runner = CliRunner()
CALIBRATION = "loadgen/measurements/calibration.json"
HOTPATHS = ROOT / "benchmarks" / "results" / "app_hotpaths.json"


@pytest.fixture
def no_calibration(tmp_path: Path) -> Path:
    """The default profile, its calibration file pointed at a file that does not exist (every
    other measurement file, the home-feed benchmark included, as in the repository)."""
    text = DEFAULT_PROFILE.read_text()
    assert CALIBRATION in text
    p = tmp_path / "profile.yaml"
    p.write_text(text.replace(CALIBRATION, str(tmp_path / "absent" / "calibration.json")))
    return p


def test_capacity_refuses_without_a_whole_mix_calibration(no_calibration: Path) -> None:
    assert HOTPATHS.exists()  # the single-endpoint figure is there to fall back on: it must not
    r = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile", str(no_calibration)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert "app_rps_per_core: no measurement" in lines[0]
    assert "absent" in lines[0] and "freehold loadtest calibrate" in lines[0]
    assert "--pessimistic" in lines[0]
    assert "Traceback" not in r.output


def test_pessimistic_plans_with_the_cited_figure_and_says_so(no_calibration: Path) -> None:
    cited = yaml.safe_load(no_calibration.read_text())["app_rps_per_core"]["value"]
    r = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile", str(no_calibration),
                            "--pessimistic", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    app_in = next(i for i in doc["inputs"] if i["name"] == "app_rps_per_core")
    assert app_in["value"] == cited and app_in["pessimistic"] is True
    assert app_in["kind"] == "cited" and app_in["source"].startswith("PESSIMISTIC")
    home = json.loads(HOTPATHS.read_text()).get("home_feed_rps_per_app_core")
    assert app_in["value"] != home
    assert doc["notes"][0].startswith("PESSIMISTIC: app_rps_per_core")

    text = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile",
                               str(no_calibration), "--pessimistic"])
    assert text.exit_code == 0, text.output
    first = text.output.splitlines()[:3]
    assert any(line.startswith("PESSIMISTIC: app_rps_per_core") for line in first), first


def test_with_the_calibration_the_plan_uses_it_and_no_pessimism(tmp_path: Path,
                                                                no_calibration: Path) -> None:
    cal = tmp_path / "absent" / "calibration.json"
    cal.parent.mkdir()
    cal.write_text(json.dumps({"rps_per_core": 250.0, "measured_at": "2026-12-06T12:00:00"}))
    r = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile", str(no_calibration),
                            "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    app_in = next(i for i in doc["inputs"] if i["name"] == "app_rps_per_core")
    assert app_in["value"] == 250.0 and app_in["kind"] == "measured"
    assert "pessimistic" not in app_in
    assert not any(n.startswith("PESSIMISTIC") for n in doc["notes"])


def test_the_plan_says_what_the_calibrated_figure_is_per(tmp_path: Path,
                                                         no_calibration: Path) -> None:
    """Issue 24 part 3: the plan quotes the calibration's rps_per_core_basis (per app
    CPU-second by the app's own accounting), or says an older file does not say."""
    cal = tmp_path / "absent" / "calibration.json"
    cal.parent.mkdir()
    basis = ("requests per app CPU-second at ramp 5, the highest step within the SLO (9,000 "
             "requests / 20.0 app CPU-seconds; the app was 0.9 cores busy), by the app's own "
             "CPU accounting: psutil over the app's process tree on this machine")
    cal.write_text(json.dumps({"rps_per_core": 450.0, "rps_per_nominal_core": 380.0,
                               "rps_per_core_basis": basis,
                               "measured_at": "2026-12-07T15:00:00"}))
    r = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile", str(no_calibration),
                            "--json"])
    assert r.exit_code == 0, r.output
    app_in = next(i for i in json.loads(r.stdout)["inputs"] if i["name"] == "app_rps_per_core")
    assert app_in["value"] == 450.0 and app_in["source"].endswith(f"(rps_per_core) — {basis}")
    text = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile",
                               str(no_calibration)])
    assert text.exit_code == 0 and "per app CPU-second" in " ".join(text.output.split())
    cal.write_text(json.dumps({"rps_per_core": 569.4, "measured_at": "2026-12-06T13:33:32"}))
    r = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile", str(no_calibration),
                            "--json"])
    app_in = next(i for i in json.loads(r.stdout)["inputs"] if i["name"] == "app_rps_per_core")
    assert app_in["value"] == 569.4
    assert "does not say what rps_per_core is per (no rps_per_core_basis" in app_in["source"]


def test_the_profile_names_no_single_endpoint_figure_for_the_whole_mix() -> None:
    raw = yaml.safe_load(DEFAULT_PROFILE.read_text())["app_rps_per_core"]
    measured = raw["measured"] if isinstance(raw["measured"], list) else [raw["measured"]]
    assert [m["file"] for m in measured] == [CALIBRATION]
    assert raw["unmeasured"] == "refuse"
    assert "stand-in for the whole mix" not in DEFAULT_PROFILE.read_text()


FAST = {"postgres": {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
        "redis": {"appendonly": "no", "appendfsync": "everysec"}}
PRODUCTION = {"postgres": {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
              "redis": {"appendonly": "yes", "appendfsync": "everysec"}}


@pytest.mark.parametrize(("run", "warned"), [
    ({"durability": FAST}, True), (None, True), ({"durability": PRODUCTION}, False),
    ({"durability": "production, as deployed by roles/postgres"}, False)])
def test_the_plan_says_when_a_measurement_ran_without_production_durability(
        tmp_path: Path, no_calibration: Path, run: dict | None, warned: bool) -> None:
    """Item 9: a calibration made with fsync off is named in the plan's notes."""
    cal = tmp_path / "absent" / "calibration.json"
    cal.parent.mkdir()
    doc = {"rps_per_core": 250.0, "measured_at": "2026-12-06T12:00:00"}
    cal.write_text(json.dumps(doc | ({"run": run} if run else {})))
    r = runner.invoke(app, ["capacity", "--accounts", "10M", "--profile", str(no_calibration),
                            "--json"])
    assert r.exit_code == 0, r.output
    notes = [n for n in json.loads(r.stdout)["notes"] if n.startswith(str(cal))]
    assert bool(notes) == warned, notes
    if warned:
        assert "not measured with production durability" in notes[0]
