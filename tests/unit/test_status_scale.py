"""`freehold status` at 300 servers (issue 20): recorded probe output classified per site and
per role with the unhealthy servers first, the same in --json, and a bounded round of probes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from freehold.deploy.cli import app as cli_app
from freehold.deploy.ops import status as status_mod
from freehold.deploy.ops.fleet import is_plain
from freehold.deploy.ops.remote import Outcome, run_many
from freehold.deploy.ops.render import show
from freehold.deploy.ops.status import DOWN, OK, classify, summarize
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.deploy.ssh import SSHSettings
from tests.unit.status_samples import targets_section, units_section

ROOT = Path(__file__).resolve().parents[2]
LAB_300 = ROOT / "inventories" / "lab-300.yaml"
# what a node of the 30-server lab printed for `freehold status` (base, mesh, node exporter)
NODE_PROBE = (Path(__file__).parent / "data" / "status-node-probe.txt").read_text()
DEAD = ("dal-n007", "pdx-n070", "ash-2")
WG_FAILED = ("chi-n001",)


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(LAB_300)


def recorded(spec: ClusterSpec) -> dict[str, Outcome]:
    """Every server probed over SSH (as with --deep): every node answers with the recorded
    probe output; the core servers with all their units active; DEAD do not answer; on
    WG_FAILED wg-quick@wg0 has failed. pdx-2's Prometheus (ash-2's is dead) scraped every
    node 5 s ago, failing the dead ones and WG_FAILED (its mesh tunnel is down)."""
    failing = {*DEAD, *WG_FAILED}
    seen = {s.name: ("down", 5.0, "context deadline exceeded") if s.name in failing
            else ("up", 5.0, "") for s in spec.servers}
    out: dict[str, Outcome] = {}
    for srv in spec.servers:
        if srv.name in DEAD:
            out[srv.name] = Outcome(srv.name, False, error="TimeoutError: timed out")
            continue
        text = NODE_PROBE if is_plain(srv) else units_section(spec, srv)
        if srv.name == "pdx-2":
            text += targets_section(seen, interval_s=60.0)
        if srv.name in WG_FAILED:
            text = text.replace("Id=wg-quick@wg0.service\nLoadState=loaded\nActiveState=active",
                                "Id=wg-quick@wg0.service\nLoadState=loaded\nActiveState=failed")
        out[srv.name] = Outcome(srv.name, True, 0, text, seconds=0.2)
    return out


def test_recorded_node_probe_is_a_healthy_node(spec: ClusterSpec) -> None:
    node = spec.server("ash-n001")
    report = classify(spec.model_copy(update={"servers": [node]}),
                      {node.name: Outcome(node.name, True, 0, NODE_PROBE)})
    assert report.servers[0]["roles"] == {"base": OK, "mesh": OK, "exporters": OK}


def test_300_servers_counted_per_site_and_role_unhealthy_first(spec: ClusterSpec) -> None:
    started = time.monotonic()
    report = classify(spec, recorded(spec))
    assert time.monotonic() - started < 5          # classification is not the bottleneck
    summary = summarize(report.servers)
    assert summary["servers"] == 300 and summary["up"] == 297
    assert summary["sites"]["dal"] == {"servers": 75, "up": 74, "down": 1, "unhealthy": 1}
    assert summary["sites"]["chi"] == {"servers": 74, "up": 74, "down": 0, "unhealthy": 1}
    assert summary["sites"]["ash"]["down"] == 1 and summary["sites"]["pdx"]["down"] == 1
    assert summary["roles"]["base"] == {"servers": 300, OK: 297, DOWN: 3, "not deployed": 0}
    assert summary["roles"]["mesh"] == {"servers": 300, OK: 296, DOWN: 4, "not deployed": 0}
    assert summary["roles"]["exporters"] == {"servers": 300, OK: 297, DOWN: 3,
                                             "not deployed": 0}
    assert summary["roles"]["monitoring"] == {"servers": 2, OK: 1, DOWN: 1, "not deployed": 0}
    # down servers first, then the one with a role down, then the 296 healthy ones
    first = [r["server"] for r in report.servers[:4]]
    assert first == ["ash-2", "dal-n007", "pdx-n070", "chi-n001"]
    assert all(r["up"] and DOWN not in r["roles"].values() for r in report.servers[4:])
    assert sorted(summary["unhealthy"]) == sorted([*DEAD, *WG_FAILED])
    assert "role mesh: chi-n001: wg-quick@wg0.service not running" in report.problems
    # every server went over SSH; Prometheus's view is said beside it
    assert summary["via"] == {"ssh": 300} and report.mode == "ssh"
    rows = {r["server"]: r for r in report.servers}
    assert rows["dal-n007"]["prometheus"].startswith("Prometheus on pdx-2 failed to scrape")
    assert rows["ash-n001"]["prometheus"] == "seen by Prometheus on pdx-2 over the mesh 5 s ago"
    assert rows["chi-n001"]["error"].startswith("answers over SSH, but Prometheus on pdx-2")
    assert "prometheus: ash-2: Prometheus does not answer (TimeoutError: timed out)" \
        in report.problems


def test_json_is_the_same_data(spec: ClusterSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    report = classify(spec, recorded(spec))
    monkeypatch.setattr(status_mod, "gather", lambda *_a, **_k: report)
    res = CliRunner().invoke(cli_app, ["status", str(LAB_300), "--json"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.output)
    assert doc["summary"] == summarize(report.servers)
    assert [r["server"] for r in doc["servers"][:4]] == ["ash-2", "dal-n007", "pdx-n070",
                                                         "chi-n001"]
    assert len(doc["servers"]) == 300


def test_screen_at_300_lists_only_the_unhealthy(spec: ClusterSpec) -> None:
    report = classify(spec, recorded(spec))
    console = Console(record=True, width=160)
    show(report, console)
    text = console.export_text()
    assert "297/300 servers up, 4 unhealthy" in text
    assert "per site" in text and "per role" in text
    assert "unhealthy servers (4 of 300" in text
    assert "chi-n001" in text and "ash-n001" not in text     # healthy nodes are not listed
    console = Console(record=True, width=160)
    show(report, console, all_servers=True)
    listed = console.export_text()
    assert "ash-n001" in listed and listed.index("dal-n007") < listed.index("ash-n001")


@pytest.fixture()
def silent_ports() -> Iterator[list[int]]:
    """Loopback ports that accept TCP connections and never say anything (a hung sshd)."""
    socks = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
    try:
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_a_round_of_probes_ends_by_its_deadline(spec: ClusterSpec,
                                                silent_ports: list[int]) -> None:
    hung = [s.model_copy(update={"public_address": "127.0.0.1", "name": f"h{i}",
                                 "ssh_port": silent_ports[i % len(silent_ports)]})
            for i, s in enumerate(spec.servers[:40])]
    ssh = SSHSettings(connect_timeout=30.0, command_timeout=30.0, parallel=8)
    started = time.monotonic()
    out = run_many(hung, lambda s: "true", ssh, deadline=1.5)
    took = time.monotonic() - started
    assert took < 4, took                       # not 40 / 8 x 30 s
    assert len(out) == 40 and not any(o.reachable for o in out.values())
    assert {o.error for o in out.values()} == {"no answer within 1.5 s"}
