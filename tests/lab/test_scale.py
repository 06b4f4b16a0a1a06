"""The scale rehearsal in CI (issue 20): a 30-server lab of its own from `freehold lab scale`
(4 sites, 3 providers, the production example's latencies; 12 core servers carrying the heavy
roles, not deployed here, and 18 nodes), the first deploy of what every server carries (base,
mesh, the monitoring exporters) with 3 nodes killed while it runs, the rerun once they are back,
and a no-op; then `freehold status`, Prometheus's targets and the mesh's peers and
cross-site pings see every server. benchmarks/scale_bench.py runs the same steps at 300
servers, with figures.

Its own lab name and network (FREEHOLD_SCALE_TEST_NAME, FREEHOLD_SCALE_TEST_NET: a /20), so it
runs beside the main lab and the other lab tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from freehold.deploy import rehearsal as rh
from freehold.deploy.lab import Lab
from freehold.deploy.spec import load_spec

SERVERS = 30
KILLED = 3
NAME = os.environ.get("FREEHOLD_SCALE_TEST_NAME", "scaleci")
NET = os.environ.get("FREEHOLD_SCALE_TEST_NET", "10.220.128.0/20")
MESH = "100.114.128.0/17"
CONTROLLER_MEMORY_MIB = 1536   # the bound on the controller (set for 300 servers)

# ceilings, not the aim (~8 min alone on the machine): with a CI run of the main lab and two
# other 30-server labs beside it (load average 60-90) its first deploy took 15 min
pytestmark = pytest.mark.timeout(3000)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory, lab_ready: None
              ) -> Iterator[dict[str, Any]]:
    """Boot, first deploy with 3 servers killed mid-run, boot them again, rerun, no-op; the
    lab is down again before the tests look at the runs."""
    folder = tmp_path_factory.mktemp("scale")
    spec_path = rh.scaled_spec(folder / f"{NAME}.yaml", NAME, SERVERS, NET, MESH)
    spec = load_spec(spec_path)
    hosts = [s.name for s in spec.servers]
    lab = Lab.from_spec(spec_path)
    secrets, key = folder / f"{NAME}.secrets", Fernet.generate_key()
    roles = list(rh.EVERY_SERVER_ROLES)
    victims = rh.pick_victims(rh.nodes(spec), KILLED)
    out: dict[str, Any] = {"hosts": hosts, "victims": victims, "seconds": {}}
    started = time.monotonic()

    def note(line: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {line}", flush=True)

    with rh.lab_up(lab, log=note) as boot_s:
        out["seconds"]["boot"] = boot_s
        killer = rh.FaultMidRun(lab, victims, "kill", settle=20.0, log=note)
        out["first"] = rh.deploy_measured("first", spec_path, secrets, key, roles,
                                          timeout=1800, during=killer, log=note)
        killer.join()
        out["kill_errors"] = killer.errors
        out["kill_events"] = killer.events
        out["seconds"]["restart"] = rh.start_again(lab, victims, timeout=180)
        out["rerun"] = rh.deploy_measured("rerun", spec_path, secrets, key, roles,
                                          timeout=900, log=note)
        out["noop"] = rh.deploy_measured("noop", spec_path, secrets, key, roles,
                                         timeout=600, log=note)
        out["observed"] = rh.observe(spec_path, lab, key, log=note, pairs=10)
    for label in ("first", "rerun", "noop"):
        run = out[label]
        note(f"{label}: exit {run.code}, {run.wall_s:.0f} s, controller CPU {run.cpu_s:.1f} s, "
             f"peak {run.peak_rss_mib:.0f} MiB, {run.changes()} operations changed on "
             f"{len(run.changed_hosts())} hosts, failed {sorted(run.failed())}")
    out["seconds"]["total"] = time.monotonic() - started
    yield out


def test_the_killed_servers_are_named_with_a_reason_and_the_run_fails(
        rehearsal: dict[str, Any]) -> None:
    first: rh.DeployRun = rehearsal["first"]
    assert not rehearsal["kill_errors"]
    assert rehearsal["kill_events"], "the servers were never killed mid-run"
    assert first.code != 0, "a deploy that lost servers must exit non-zero"
    failed = first.failed()
    assert sorted(failed) == sorted(rehearsal["victims"]), failed
    for host in rehearsal["victims"]:
        assert len(failed[host]) > 20, f"{host}: no reason given: {failed[host]!r}"
    assert set(first.doc.get("rerun") or first.doc["failed_hosts"]) >= set(rehearsal["victims"])


def test_every_other_server_converged_in_the_first_deploy(rehearsal: dict[str, Any]) -> None:
    first: rh.DeployRun = rehearsal["first"]
    others = [h for h in rehearsal["hosts"] if h not in rehearsal["victims"]]
    statuses = {(r["host"], r["role"]): r["status"] for r in first.results()}
    bad = {k: v for k, v in statuses.items() if k[0] in others and v not in ("ok", "changed")}
    assert not bad, bad
    for role in rh.EVERY_SERVER_ROLES:
        assert all((h, role) in statuses for h in others), f"{role} missing on some servers"
    assert set(first.changed_hosts()) >= set(others)


def test_the_rerun_changes_only_the_killed_servers(rehearsal: dict[str, Any]) -> None:
    rerun: rh.DeployRun = rehearsal["rerun"]
    assert rerun.code == 0, rerun.failed() or rerun.stderr_tail
    assert sorted(rerun.changed_hosts()) == sorted(rehearsal["victims"])


def test_a_second_deploy_changes_nothing(rehearsal: dict[str, Any]) -> None:
    noop: rh.DeployRun = rehearsal["noop"]
    assert noop.code == 0, noop.failed() or noop.stderr_tail
    assert noop.changes() == 0, noop.change_names()
    assert len({r["host"] for r in noop.results()}) == SERVERS


def test_status_prometheus_and_the_mesh_see_every_server(rehearsal: dict[str, Any]) -> None:
    seen: rh.Observed = rehearsal["observed"]
    # the 20 s bound is the for 300 servers on a quiet machine; CI shares the machine
    # with the main lab, so here only its correctness is required and the time is printed
    bad = [(name, detail) for name, ok, detail in seen.checks
           if not ok and not name.startswith("status: within")]
    assert not bad, bad
    assert seen.figures["status"]["sites"] == 4
    print(f"status over {SERVERS} servers: {seen.figures['status']['wall_s']} s")


def test_the_controller_stays_small(rehearsal: dict[str, Any]) -> None:
    for label in ("first", "rerun", "noop"):
        run: rh.DeployRun = rehearsal[label]
        assert 0 < run.peak_rss_mib < CONTROLLER_MEMORY_MIB, (label, run.peak_rss_mib)
        assert run.cpu_s > 0, label

