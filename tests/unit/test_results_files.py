"""Every results file says which code and which settings made it (issue 18, items 9 and 11):
the commit (and whether the tree was dirty), the script that wrote it (which must exist), the
settings and the servers' durability; the files the capacity model reads were measured with
production durability (PostgreSQL fsync, synchronous_commit, full_page_writes on; Redis AOF)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
CALIBRATION = ROOT / "loadgen" / "measurements" / "calibration.json"
FILES = sorted(RESULTS.glob("*.json"))
PRODUCTION = {"postgres": {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
              "redis": {"appendonly": "yes", "appendfsync": "everysec"}}
# results files `freehold capacity` reads (loadgen/profiles/default.yaml names them)
FEED_CAPACITY = ("app_hotpaths.json", "app_hotpaths_cluster.json", "locust_bench.json")


def run_of(path: Path) -> dict:
    run = json.loads(path.read_text()).get("run")
    assert isinstance(run, dict), f"{path.name}: no run header — regenerate it with its script"
    return run


def test_there_are_results_files() -> None:
    assert {f.name for f in FILES} >= set(FEED_CAPACITY)


@pytest.mark.parametrize("path", [*FILES, CALIBRATION], ids=lambda p: p.name)
def test_results_file_names_its_commit_script_and_settings(path: Path) -> None:
    run = run_of(path)
    assert re.fullmatch(r"[0-9a-f]{40}", str(run.get("commit"))), f"{path.name}: commit"
    assert isinstance(run.get("dirty"), bool), f"{path.name}: dirty flag"
    assert (ROOT / str(run.get("script"))).is_file(), f"{path.name}: {run.get('script')}"
    assert isinstance(run.get("settings"), dict), f"{path.name}: settings"
    assert run.get("durability"), f"{path.name}: durability"


@pytest.mark.parametrize("name", FEED_CAPACITY)
def test_capacity_inputs_were_measured_with_production_durability(name: str) -> None:
    assert run_of(RESULTS / name)["durability"] == PRODUCTION


def test_the_header_is_written_in_one_place(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from resultsfile import write_results
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = write_results(tmp_path / "x.json", {"figure": 1, "run": "old"},
                        script=ROOT / "benchmarks" / "spec_check.py", settings={"runs": 3,
                        "spec": ROOT / "inventories" / "lab.yaml"}, durability=PRODUCTION)
    doc = json.loads(out.read_text())
    assert list(doc) == ["run", "figure"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert doc["run"]["commit"] == head
    assert doc["run"]["script"] == "benchmarks/spec_check.py"
    assert doc["run"]["settings"] == {"runs": 3, "spec": "inventories/lab.yaml"}
    assert doc["run"]["durability"] == PRODUCTION
