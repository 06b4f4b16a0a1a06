"""`freehold status` reading the plain servers from Prometheus (issue 20): the monitoring
servers' `targets` section (deploy/ops/files/prom_targets.py) made from Prometheus's API answer,
the verdicts (up, stale, down, absent, the freshest Prometheus winning), and which servers
`gather` then probes over SSH (a recording stand-in for the SSH round: no server here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rich.console import Console

from freehold.deploy.ops import fleet
from freehold.deploy.ops import status as status_mod
from freehold.deploy.ops.fleet import ABSENT, DOWN, STALE, UP, Target, fleet_view, judge
from freehold.deploy.ops.probes import MARK, probe_script
from freehold.deploy.ops.remote import Outcome
from freehold.deploy.ops.render import show
from freehold.deploy.ops.status import OK, classify, gather, healthy, summarize
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.deploy.ssh import SSHSettings
from tests.unit.status_samples import targets_line, targets_section, units_section

ROOT = Path(__file__).resolve().parents[2]
LAB_300 = ROOT / "inventories" / "lab-300.yaml"
# Prometheus 2.42 (Debian 12)'s /api/v1/targets?state=active: node n1 up, node n2 refusing
# connections, n1 again in another job
RECORDED = json.loads((Path(__file__).parent / "data" / "prometheus-targets.json").read_text())
N1_SCRAPED = datetime(2026, 12, 7, 13, 43, 44, 890686, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(LAB_300)


@pytest.fixture(scope="module")
def script() -> ModuleType:
    found = importlib.util.spec_from_file_location("prom_targets", fleet.SCRIPT)
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


# ---- the section a monitoring server prints ----------------------------------------------

def test_the_recorded_api_answer_made_small(script: ModuleType) -> None:
    rows = script.compact(RECORDED, "node", N1_SCRAPED + 2.0)
    assert rows == [
        ["n1", "up", 2.0, 1.0, ""],
        ["n2", "down", 2.8, 1.0, 'Get "http://127.0.0.1:19102/metrics": dial tcp '
                                 '127.0.0.1:19102: connect: connection refused'],
    ]                                                    # job "other" left out
    assert script.compact(RECORDED, "other", N1_SCRAPED)[0][:2] == ["n1", "up"]
    assert script.seconds("1m30s") == 90 and script.seconds("500ms") == 0.5
    assert script.seconds("10") is None and script.seconds(None) is None
    assert script.seconds("1m30x") is None
    assert script.age("0001-01-01T00:00:00Z", N1_SCRAPED) is None        # never scraped
    assert script.age("2026-12-07T14:43:44.890686+01:00", N1_SCRAPED + 1) == 1.0
    assert script.age("2026-12-07T13:43:44Z", N1_SCRAPED) == 0.9
    with pytest.raises(ValueError):
        script.compact({"status": "error", "error": "bad"}, "node", 0)
    with pytest.raises(ValueError):
        script.compact({"status": "success", "data": {}}, "node", 0)


def _stamp(ago: float) -> str:
    """RFC 3339 with nanoseconds, as Prometheus writes `lastScrape`."""
    when = datetime.fromtimestamp(time.time() - ago, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def test_the_script_runs_as_the_probe_runs_it() -> None:
    """python3 -c SCRIPT node, the API's answer on stdin: one JSON line that the controller
    reads back; anything else on stdin: exit 3, saying what it got."""
    doc = json.loads(json.dumps(RECORDED))
    targets = doc["data"]["activeTargets"]
    targets[0]["lastScrape"], targets[1]["lastScrape"] = _stamp(3), "0001-01-01T00:00:00Z"
    targets[1]["health"] = "unknown"
    run = [sys.executable, "-c", fleet.SCRIPT.read_text(), "node"]
    out = subprocess.run(run, input=json.dumps(doc), capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    got = fleet.parse_targets("m1", out.stdout)
    assert set(got) == {"n1", "n2"}
    assert got["n1"].health == "up" and 2 <= (got["n1"].age_s or 0) < 30
    assert got["n2"] == Target("m1", "unknown", None, 1.0, got["n2"].error)
    bad = subprocess.run(run, input="<html>502</html>", capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 3 and bad.stdout.startswith("prometheus gave no target list")


def test_the_monitoring_probe_asks_its_own_prometheus(spec: ClusterSpec) -> None:
    ash2 = spec.server("ash-2")
    script = probe_script(spec, ash2)
    assert f"'{MARK}targets'" in script
    assert f"http://{ash2.mesh_address}:9090/api/v1/targets?state=active&scrapePool=node" \
        in script
    assert "curl -sS -m 3" in script and "python3 -c" in script
    assert "targets" not in probe_script(spec, spec.server("ash-n001"))


# ---- verdicts --------------------------------------------------------------------------

def seen(monitor: str = "m1", health: str = "up", age: float | None = 2.0,
         interval: float | None = 10.0, error: str = "") -> Target:
    return Target(monitor, health, age, interval, error)


def test_verdicts() -> None:
    assert judge("n", [seen()], ("m1",), 60).verdict == UP
    assert judge("n", [seen(age=30)], ("m1",), 60).verdict == UP      # 3 intervals: still up
    assert judge("n", [seen(age=30.5)], ("m1",), 60).verdict == STALE
    # the target's own interval first; the spec's when Prometheus does not say
    assert judge("n", [seen(age=100, interval=None)], ("m1",), 60).verdict == UP
    assert judge("n", [seen(age=190, interval=None)], ("m1",), 60).verdict == STALE
    never = judge("n", [seen(health="unknown", age=None)], ("m1",), 10)
    assert never.verdict == STALE and never.says() == "never scraped by Prometheus on m1 (unknown)"
    down = judge("n", [seen(health="down", error="connect: no route to host")], ("m1",), 10)
    assert down.verdict == DOWN
    assert down.says() == ("Prometheus on m1 failed to scrape its node exporter 2 s ago: "
                           "connect: no route to host")
    # an old failure is stale, not down: Prometheus has not looked since
    assert judge("n", [seen(health="down", age=45)], ("m1",), 10).verdict == STALE
    absent = judge("n", [], ("m1", "m2"), 10)
    assert absent.verdict == ABSENT
    assert absent.says() == "not a node target of the Prometheus that answered (m1, m2)"
    assert judge("n", [seen(age=4)], ("m1",), 10).says() == \
        "seen by Prometheus on m1 over the mesh 4 s ago"


def test_two_prometheus_disagreeing_the_freshest_wins() -> None:
    up_late, down_now = seen("m1", "up", 9.0), seen("m2", "down", 1.5, error="timeout")
    got = judge("n", [up_late, down_now], ("m1", "m2"), 10)
    assert got.verdict == DOWN and got.target == down_now
    got = judge("n", [seen("m1", "down", 8.0), seen("m2", "up", 0.5)], ("m1", "m2"), 10)
    assert got.verdict == UP and got.target is not None and got.target.monitor == "m2"
    # a Prometheus that fell behind does not outvote one that is current
    got = judge("n", [seen("m1", "up", 200.0), seen("m2", "down", 3.0)], ("m1", "m2"), 10)
    assert got.verdict == DOWN
    got = judge("n", [seen("m1", "unknown", None), seen("m2", "up", 3.0)], ("m1", "m2"), 10)
    assert got.verdict == UP


def test_fleet_view_from_the_monitors_sections() -> None:
    answers = {
        "m1": (0, targets_line({"a": ("up", 2.0, ""), "b": ("down", 1.0, "refused"),
                                "c": ("up", 95.0, "")})),
        "m2": (None, "TimeoutError: timed out"),
        "m3": (0, "curl: (28) whatever\nnot json"),
    }
    view = fleet_view(answers, ["a", "b", "c", "d"], 10)
    assert view.answered == {"m1": 3}
    assert view.failed["m2"] == "TimeoutError: timed out"
    assert view.failed["m3"].startswith("its answer could not be read")
    assert {n: s.verdict for n, s in view.sightings.items()} == {
        "a": UP, "b": DOWN, "c": STALE, "d": ABSENT}
    assert view.seen_up("a") and not view.seen_up("b") and not view.seen_up("zz")
    assert view.count(UP) == 1
    # none answering: nobody is judged, every plain server goes to SSH
    none = fleet_view({"m1": (124, ""), "m2": (3, "curl: (7) Failed to connect")}, ["a"], 10)
    assert not none.answered and not none.sightings
    assert none.failed == {"m1": "no answer within its timeout",
                           "m2": "curl: (7) Failed to connect"}
    with pytest.raises(ValueError):
        fleet.parse_targets("m1", '{"targets": [["a", "up"]]}')


def test_plain_servers(spec: ClusterSpec) -> None:
    plain = fleet.plain_servers(spec)
    assert len(plain) == 288 and all(s.name.split("-")[1].startswith("n") for s in plain)
    assert not fleet.is_plain(spec.server("pdx-4"))     # backup, loadgen: probed over SSH
    assert fleet.is_plain(spec.server("ash-n001"))


# ---- gather: which servers go over SSH ----------------------------------------------------

class Round:
    """Stands in for run_many: records each round's servers and deadline and answers with
    `answer(server)` (building each server's real probe script on the way)."""

    def __init__(self, spec: ClusterSpec, answer: Any, pause: float = 0.0) -> None:
        self.spec, self.answer, self.pause = spec, answer, pause
        self.rounds: list[tuple[list[str], float | None]] = []

    def __call__(self, servers: list[Any], command_for: Any, ssh: SSHSettings,
                 timeout: float | None = None, deadline: float | None = None
                 ) -> dict[str, Outcome]:
        self.rounds.append(([s.name for s in servers], deadline))
        assert all(command_for(s) for s in servers)
        time.sleep(self.pause)
        return {s.name: self.answer(s) for s in servers}


DEAD = "dal-n007"          # powered off: Prometheus fails to scrape it, SSH cannot connect
UNSEEN = "chi-n001"        # SSH answers, units active, Prometheus fails to scrape it: mesh path
BEHIND = "pdx-n070"        # last scraped long ago: Prometheus behind
MISSING = "ash-n005"       # no Prometheus has it as a target (spec grew, monitoring not redeployed)
NEW = "dal-n072"           # a target not scraped yet (Prometheus just reloaded)
OFF_PROMETHEUS = (DEAD, UNSEEN, BEHIND, MISSING, NEW)   # probed over SSH


def cluster(spec: ClusterSpec, monitors_answer: bool = True):  # noqa: ANN201 - a closure
    """Every server answers SSH with its units active but DEAD; the monitoring servers' probes
    carry their Prometheus's node targets: ash-2 scraped a while ago, pdx-2 just now (the
    freshest), both failing DEAD and UNSEEN, BEHIND stale on both, MISSING on neither."""
    plain = [s.name for s in fleet.plain_servers(spec)]

    def view(age: float) -> dict[str, tuple[str, float | None, str]]:
        out: dict[str, tuple[str, float | None, str]] = {}
        for name in plain:
            if name == MISSING:
                continue
            if name in (DEAD, UNSEEN):
                out[name] = ("down", age, "context deadline exceeded")
            elif name == BEHIND:
                out[name] = ("up", 400.0, "")
            elif name == NEW:
                out[name] = ("unknown", None, "")
            else:
                out[name] = ("up", age, "")
        return out

    sections = {"ash-2": targets_section(view(55.0), 60.0),
                "pdx-2": targets_section(view(4.0), 60.0)}

    def answer(srv: Any) -> Outcome:
        if srv.name == DEAD:
            return Outcome(srv.name, False, error="NoValidConnectionsError: unreachable",
                           seconds=3.0)
        text = units_section(spec, srv)
        if srv.name in sections:
            text += sections[srv.name] if monitors_answer else \
                f"{MARK}targets\ncurl: (7) Failed to connect\n{MARK}rc 3\n"
        return Outcome(srv.name, True, 0, text, seconds=0.3)

    return answer


def test_plain_servers_seen_up_are_not_probed_over_ssh(spec: ClusterSpec,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rounds = Round(spec, cluster(spec))
    monkeypatch.setattr(status_mod, "run_many", rounds)
    report = gather(spec, SSHSettings(), deadline=18.0)
    first, second = rounds.rounds
    core = [s.name for s in spec.servers if not fleet.is_plain(s)]
    assert first == (core, 18.0)                       # the 12 core servers, monitoring too
    assert sorted(second[0]) == sorted(OFF_PROMETHEUS)
    assert second[1] is not None and 16 < second[1] <= 18.0   # what is left of the deadline
    assert report.mode == "prometheus"
    summary = summarize(report.servers)
    assert summary["via"] == {"prometheus": 283, "ssh": 17} and summary["up"] == 299
    rows = {r["server"]: r for r in report.servers}
    n1 = rows["ash-n001"]
    assert n1["via"] == "prometheus" and n1["up"] and healthy(n1)
    assert n1["seen_by"] == "pdx-2" and n1["seen_s"] == 4.0     # the freshest Prometheus
    assert n1["roles"] == {"base": OK, "mesh": OK, "exporters": OK}
    assert n1["prometheus"] == "seen by Prometheus on pdx-2 over the mesh 4 s ago"
    # dead: down over SSH, and the report says what Prometheus last saw
    assert rows[DEAD]["up"] is False and rows[DEAD]["via"] == "ssh"
    assert rows[DEAD]["error"] == "NoValidConnectionsError: unreachable"
    assert rows[DEAD]["prometheus"].startswith("Prometheus on pdx-2 failed to scrape")
    # answers SSH with every unit active, yet Prometheus cannot scrape it: unhealthy, why said
    assert rows[UNSEEN]["up"] and not healthy(rows[UNSEEN])
    assert rows[UNSEEN]["error"] == ("answers over SSH, but Prometheus on pdx-2 failed to "
                                     "scrape its node exporter 4 s ago: context deadline "
                                     "exceeded")
    # behind, missing, new: the servers are fine over SSH; the monitoring is what is wrong
    assert healthy(rows[BEHIND]) and healthy(rows[MISSING]) and healthy(rows[NEW])
    assert rows[NEW]["prometheus"].startswith("never scraped by Prometheus on ")
    assert [r["server"] for r in report.servers[:2]] == [DEAD, UNSEEN]   # unhealthy first
    prom = report.components["prometheus"]
    assert prom.state == "degraded"
    assert prom.problems == [
        f"not a node target of the Prometheus that answered: 1 server ({MISSING}) "
        "(`freehold deploy --roles monitoring` adds them)",
        f"last scraped more than 3 scrape intervals ago (Prometheus is behind): 1 server "
        f"({BEHIND})",
        f"{UNSEEN}: {rows[UNSEEN]['error']}"]
    assert prom.notes == [    # not scraped yet is no fault: Prometheus just got the target
        f"not scraped yet (Prometheus started or reloaded within a scrape interval), probed "
        f"over SSH: 1 server ({NEW})",
        "283 servers judged by Prometheus over the mesh (last scrapes 4 s old), not over SSH: "
        "`--deep` reads their units"]
    assert [r["monitor"] for r in prom.rows] == ["ash-2", "pdx-2"]
    doc = report.to_doc()
    assert json.loads(json.dumps(doc)) == doc and doc["mode"] == "prometheus"
    assert doc["summary"] == summary and len(doc["servers"]) == 300


def test_no_prometheus_answering_probes_every_server_over_ssh(
        spec: ClusterSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    rounds = Round(spec, cluster(spec, monitors_answer=False))
    monkeypatch.setattr(status_mod, "run_many", rounds)
    report = gather(spec, SSHSettings(), deadline=18.0)
    assert len(rounds.rounds) == 2 and len(rounds.rounds[1][0]) == 288
    assert report.mode == "ssh" and summarize(report.servers)["via"] == {"ssh": 300}
    prom = report.components["prometheus"]
    assert prom.problems[-1] == "monitoring unreachable: every server probed over SSH"
    assert "ash-2: Prometheus does not answer (curl: (7) Failed to connect)" in prom.problems
    assert "prometheus: monitoring unreachable: every server probed over SSH" in report.problems
    # without Prometheus's view, a plain server answering SSH is judged by its units alone
    assert healthy(next(r for r in report.servers if r["server"] == UNSEEN))


def test_deep_probes_every_server_over_ssh_in_one_round(
        spec: ClusterSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    rounds = Round(spec, cluster(spec))
    monkeypatch.setattr(status_mod, "run_many", rounds)
    report = gather(spec, SSHSettings(), deadline=18.0, deep=True)
    assert [len(r[0]) for r in rounds.rounds] == [300]
    assert report.mode == "ssh" and summarize(report.servers)["via"] == {"ssh": 300}
    # Prometheus's view still says what SSH cannot: UNSEEN's mesh path is broken
    rows = {r["server"]: r for r in report.servers}
    assert not healthy(rows[UNSEEN]) and healthy(rows["ash-n001"])
    assert rows["ash-n001"]["prometheus"].startswith("seen by Prometheus on pdx-2")


def test_a_spec_without_monitoring_is_one_ssh_round(spec: ClusterSpec,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    servers = [s.model_copy(update={"roles": [r for r in s.roles if r != "monitoring"]})
               for s in spec.servers]
    bare = spec.model_copy(update={"servers": servers})
    rounds = Round(bare, cluster(bare))
    monkeypatch.setattr(status_mod, "run_many", rounds)
    report = gather(bare, SSHSettings(), deadline=18.0)
    assert [len(r[0]) for r in rounds.rounds] == [300]
    assert "prometheus" not in report.components and report.mode == "ssh"


def test_the_second_round_keeps_to_the_deadline(spec: ClusterSpec,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The first round took nearly the whole deadline: the plain servers Prometheus does not
    see up are not probed, and say why."""
    rounds = Round(spec, cluster(spec), pause=0.7)
    monkeypatch.setattr(status_mod, "run_many", rounds)
    report = gather(spec, SSHSettings(), deadline=1.5)
    assert len(rounds.rounds) == 1
    rows = {r["server"]: r for r in report.servers}
    assert rows[BEHIND]["up"] is False
    assert rows[BEHIND]["error"] == "not probed: the 1.5 s deadline was spent"
    assert rows["ash-n001"]["via"] == "prometheus" and rows["ash-n001"]["up"]


def test_the_screen_says_how_servers_were_judged(spec: ClusterSpec,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_mod, "run_many", Round(spec, cluster(spec)))
    report = gather(spec, SSHSettings(), deadline=18.0)
    console = Console(record=True, width=200)
    show(report, console, all_servers=True)
    text = console.export_text()
    assert "judged by Prometheus over the mesh: 283 servers; probed over SSH: 17" in text
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("ash-n001 "))
    assert "prometheus (pdx-2, 4 s)" in line
    dead = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{DEAD} "))
    assert "unreachable; Prometheus on pdx-2 failed to scrape" in dead
    assert "prometheus" in text and "node_targets" in text          # the monitors' table


def test_classify_at_300_from_prometheus_is_quick(spec: ClusterSpec) -> None:
    answer = cluster(spec)
    outcomes = {s.name: answer(s) for s in spec.servers
                if not fleet.is_plain(s) or s.name in OFF_PROMETHEUS}
    started = time.monotonic()
    report = classify(spec, outcomes)
    assert time.monotonic() - started < 5
    assert len(report.servers) == 300 and report.mode == "prometheus"
