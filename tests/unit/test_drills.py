"""Failover drills (deploy.drills): the measures computed from what requests and samples saw,
the report's files, and the CLI's refusals (no lab needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.drills import events as ev
from freehold.deploy.drills.events import Event, RoleSample
from freehold.deploy.drills.report import suite_html, summary_table, timeline_png
from freehold.deploy.drills.runner import DrillResult, SiteResult, flowing
from freehold.deploy.drills.watch import Protection, redis_masters, redis_protected, role_loop

REPO = Path(__file__).resolve().parents[2]


def writes(site: str, spec: list[tuple[float, int]], dur: float = 0.1) -> list[Event]:
    return [Event(t, t + dur, site, "write", s, f"{site}{t}" if s == 201 else None,
                  s == 503) for t, s in spec]


def test_outage_first_failure_to_first_success_after_the_last() -> None:
    evs = writes("a", [(9.0, 201), (10.5, 503), (11.0, 0), (12.0, 201), (13.0, 503),
                       (14.0, 201), (15.0, 201)])
    o = ev.outage(evs, "a", "write", since=10.0)
    # 10.5 first failure .. 13.0 last failure .. answered success sent at 14.0 (t1 14.1)
    assert o.seconds == pytest.approx(14.1 - 10.5)
    assert o.failures == 3


def test_outage_zero_without_failures_and_none_without_recovery() -> None:
    assert ev.outage(writes("a", [(1, 201), (2, 201)]), "a", "write", 0).seconds == 0.0
    o = ev.outage(writes("a", [(1, 201), (2, 0), (3, 503)]), "a", "write", 0)
    assert o.seconds is None and o.failures == 2


def test_outage_counts_a_request_in_flight_from_the_fault_start() -> None:
    evs = [Event(9.5, 14.5, "a", "write", 0), *writes("a", [(15.0, 201)])]
    o = ev.outage(evs, "a", "write", since=10.0)
    assert o.seconds == pytest.approx(15.1 - 10.0)  # clipped to the fault, not 9.5
    # other sites and kinds are not mixed in
    assert ev.outage(evs, "b", "write", 10.0).seconds == 0.0
    assert ev.outage(evs, "a", "read", 10.0).seconds == 0.0


def test_errors_acks_and_buckets() -> None:
    evs = writes("a", [(0.0, 201), (0.5, 503), (1.2, 500), (1.4, 0), (2.1, 201)])
    evs.append(Event(1.5, 1.6, "a", "write", 503))  # HAProxy's own: no Retry-After
    assert ev.statuses(evs) == {"0": 1, "201": 2, "500": 1, "503": 2}
    assert ev.server_errors(evs) == {"500": 1}
    assert ev.bare_503(evs) == 1
    assert ev.acknowledged(evs) == ["a0.0", "a2.1"]
    buckets = ev.per_second(evs, 0.0, 2.5)
    assert buckets["2xx"] == [1, 0, 1] and buckets["503"] == [1, 1, 0]
    assert buckets["5xx"] == [0, 1, 0] and buckets["no answer"] == [0, 1, 0]


def role(t: float, m: str, p: bool | None) -> RoleSample:
    return RoleSample(t, m, p)


def test_failover_in_order_is_not_two_primaries() -> None:
    samples = [role(0, "a1", True), role(0.5, "a1", True), role(0.2, "b1", False),
               role(1.0, "a1", None), role(1.2, "b1", False), role(1.7, "b1", True)]
    assert ev.two_primaries(samples) == []


def test_two_primaries_seen_at_once() -> None:
    samples = [role(0, "a1", True), role(3, "a1", True), role(1, "b1", False),
               role(2, "b1", True), role(4, "b1", True), role(4, "a1", False)]
    assert ev.two_primaries(samples) == [(2.0, "a1", "b1")]


def test_role_lines_parse_and_the_sampler_script_is_bounded() -> None:
    assert ev.parse_role_line("a1", "1700000000.25 f\n") == role(1700000000.25, "a1", True)
    assert ev.parse_role_line("a1", "1700000000.25 t") == role(1700000000.25, "a1", False)
    assert ev.parse_role_line("a1", "1700000000.25 x").primary is None
    assert ev.parse_role_line("a1", "garbage") is None
    assert "seq 1 7" in role_loop(7)


NODES = """\
m1 100.1.0.10:6379@16379 master - 0 0 1 connected 0-5460
m2 100.1.0.11:6379@16379 myself,master - 0 0 2 connected 5461-10922
m3 100.1.0.12:6379@16379 master - 0 0 3 connected 10923-16383
r1 100.1.0.13:6379@16379 slave m1 0 0 1 connected
r2 100.1.0.14:6379@16379 slave m2 0 0 2 connected
r3 100.1.0.15:6379@16379 slave,fail m3 0 0 3 disconnected
"""


def test_redis_protected_needs_a_connected_replica_per_master() -> None:
    assert redis_masters(NODES) == {"m1": "100.1.0.10", "m2": "100.1.0.11", "m3": "100.1.0.12"}
    assert not redis_protected("cluster_state:ok", NODES)
    healed = NODES.replace("slave,fail m3 0 0 3 disconnected", "slave m3 0 0 3 connected")
    assert redis_protected("cluster_state:ok", healed)
    assert not redis_protected("cluster_state:fail", healed)


def test_writes_flow_only_when_recent_ones_all_passed() -> None:
    evs = writes("a", [(10.0, 201), (11.0, 201), (12.0, 201)])
    assert flowing(evs, "a", 12.5)
    assert not flowing([*evs, *writes("a", [(12.2, 503)])], "a", 12.5)
    assert not flowing(evs, "b", 12.5)


def result(**kw: object) -> DrillResult:
    evs = [*writes("a", [(0.0, 201), (5.0, 503), (6.0, 201)]),
           *writes("b", [(0.0, 201), (5.5, 0), (9.0, 201)])]
    sites = [SiteResult(s, ev.outage(evs, s, "write", 4.0), ev.outage(evs, s, "read", 4.0),
                        ev.statuses([e for e in evs if e.site == s]), s == "b")
             for s in ("a", "b")]
    base = dict(scenario="leader-kill", title="t", target_write_s=15.0, leader_before="a1",
                leader_after="b1", leader_moves=True, fault_start=4.0, fault_end=8.0,
                sites=sites, acked=4, lost=[], unchecked=[], server_errors={}, bare_503=0,
                two_primaries=[], protection=Protection(1.0, 2.0, 3.0, "b1", members_s=1.5),
                events=evs)
    base.update(kw)
    return DrillResult(**base)  # type: ignore[arg-type]


def test_checks_hold_each_target() -> None:
    r = result()
    assert r.ok and r.worst_write_s == pytest.approx(6.1 - 5.0)  # site b is down by design
    assert not result(lost=["x"]).ok
    assert not result(server_errors={"500": 1}).ok
    assert not result(two_primaries=[(1.0, "a1", "b1")]).ok
    assert not result(leader_after="a1").checks()["leader moved"]
    assert not result(target_write_s=1.0).ok
    assert not result(protection=Protection(1.0, None, 3.0, members_s=1.0)).ok
    assert not result(protection=Protection(1.0, 2.0, 3.0, "b1")).ok  # a member not back
    assert result(leader_moves=False, leader_after="a1").checks()["leader stayed"]


def test_report_files(tmp_path: Path) -> None:
    r = result()
    png = timeline_png(r, tmp_path / "leader-kill.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = suite_html([r, result(scenario="site-kill", lost=["9"])],
                      {"leader-kill": png.name}, tmp_path / "index.html", "drills")
    text = page.read_text()
    assert "leader-kill.png" in text and "NO: no acknowledged write lost" in text
    assert summary_table([r]).row_count == 1
    doc = r.to_doc()
    assert doc["ok"] and doc["sites"][0]["write_outage"]["seconds"] == pytest.approx(1.1)


@pytest.mark.parametrize(("args", "words"), [
    (["inventories/production-example.yaml", "--all"], "--production-ok"),
    (["inventories/production-example.yaml", "site-kill", "--production-ok"], "lab only"),
    (["inventories/lab.yaml", "nope"], "unknown"),
    (["inventories/lab.yaml"], "give one SCENARIO or --all"),
    (["inventories/lab.yaml", "leader-kill", "--production-ok"], "lab spec"),
])
def test_cli_refuses_clearly(args: list[str], words: str, monkeypatch: pytest.MonkeyPatch
                             ) -> None:
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(app, ["drill", *args])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output


def test_status_notes_a_leader_outside_the_primary_site_without_failing() -> None:
    from freehold.deploy.ops.status import OK, Component, StatusReport, leader_outside_primary_site
    from freehold.deploy.spec import load_spec

    spec = load_spec(REPO / "inventories" / "lab.yaml")  # primary_site: a
    home = Component("patroni", rows=[{"member": "a1", "role": "leader"},
                                      {"member": "b1", "role": "sync_standby"}])
    leader_outside_primary_site(spec, home)
    assert home.state == OK and not home.problems and not home.notes
    away = Component("patroni", rows=[{"member": "b1", "role": "leader"}])
    leader_outside_primary_site(spec, away)
    # said, not failed: the cluster is whole (the lab's failover tests leave it so)
    assert away.state == OK and not away.problems
    assert "site b" in away.notes[0] and "failover --back" in away.notes[0]
    report = StatusReport(spec="lab", servers=[], components={"patroni": away})
    doc = report.to_doc()
    assert report.ok and doc["ok"] and doc["problems"] == []
    assert doc["notes"] == [f"patroni: {away.notes[0]}"]


class FakeHosts:
    """Patroni's /cluster as the lab shows it (a1 leader, b1 synchronous standby), and every
    other command recorded."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    def run(self, host: str, cmd: str, timeout: float = 20.0) -> tuple[int | None, str]:
        if "/cluster" in cmd:
            return 0, json.dumps({"members": [
                {"name": "a1", "role": "leader", "state": "running"},
                {"name": "b1", "role": "sync_standby", "state": "streaming"},
                {"name": "c1", "role": "replica", "state": "streaming"}]})
        self.commands.append((host, cmd))
        return 0, ""

    def argv(self, host: str) -> list[str]:
        return []


def test_new_scenarios_pick_their_victims_from_the_cluster() -> None:
    from freehold.deploy.drills import scenarios as sc
    from freehold.deploy.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "inventories" / "lab.yaml")
    hosts = FakeHosts()
    ctx = sc.Ctx(spec, hosts, None, "a1")
    assert sc._sync_standby(ctx) == "b1"
    assert sc._third_site(ctx) == "c"
    assert sc.SCENARIOS["standby-site-kill"].down_sites(ctx) == {"b"}
    assert sc.SCENARIOS["third-site-kill"].down_sites(ctx) == {"c"}
    # etcd: a majority stopped (2 of 3), the leader's server spared when there is a choice
    sc._etcd_quorum_loss(ctx)
    stopped = sorted(h for h, cmd in hosts.commands if "systemctl kill -s KILL etcd" in cmd)
    assert stopped == ["b1", "c1"]
    assert ctx.state["stopped"] == ("etcd", ["b1", "c1"])
    sc._start_role(ctx)
    assert sorted(h for h, cmd in hosts.commands if cmd.startswith("systemctl start etcd")) \
        == ["b1", "c1"]
    # power and links are lab-only
    with pytest.raises(sc.DrillError, match="lab only"):
        sc._slow_link(ctx)


class StartingHosts(FakeHosts):
    """c1 "starting" for the first `starting` answers of /cluster, streaming after; Redis
    protected; the archiver archives."""

    def __init__(self, starting: int) -> None:
        super().__init__()
        self.starting = starting

    def run(self, host: str, cmd: str, timeout: float = 20.0) -> tuple[int | None, str]:
        if "/cluster" in cmd:
            self.starting -= 1
            c1 = "starting" if self.starting >= 0 else "streaming"
            return 0, json.dumps({"members": [
                {"name": "a1", "role": "leader", "state": "running"},
                {"name": "b1", "role": "sync_standby", "state": "streaming"},
                {"name": "c1", "role": "replica", "state": c1}]})
        self.commands.append((host, cmd))
        if "CLUSTER INFO" in cmd:
            return 0, "cluster_state:ok\n----\n" + NODES.replace(
                "slave,fail m3 0 0 3 disconnected", "slave m3 0 0 3 connected")
        if "pg_stat_archiver" in cmd:
            return 0, "100|0"
        return 0, ""


def test_protected_waits_for_every_member_and_nudges_wal_meanwhile() -> None:
    from freehold.deploy.drills.watch import wait_protected
    from freehold.deploy.spec import load_spec

    spec = load_spec(REPO / "inventories" / "lab.yaml")
    hosts = StartingHosts(starting=3)
    p = wait_protected(spec, hosts, since=50.0, limit_s=5.0, every=0.0, clock=lambda: 60.0)
    assert p.ok and p.sync_standby_s == 10.0 and p.members_s == 10.0 and p.leader == "a1"
    nudges = [h for h, cmd in hosts.commands if "pg_logical_emit_message" in cmd]
    assert nudges == ["a1"] * 3  # on the leader, once per round while c1 was starting
    # a member that never comes back: not protected, within the bound
    p = wait_protected(spec, StartingHosts(starting=10**6), since=50.0, limit_s=0.2,
                       every=0.01, clock=lambda: 60.0)
    assert not p.ok and p.sync_standby_s == 10.0 and p.members_s is None


def test_a_run_stopped_midway_keeps_the_report_of_the_drills_it_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--all` takes most of an hour: an error in its 2nd drill must not lose the 1st's report."""
    import typer

    from freehold.deploy.cli import deploy_cmd, drill_cmd
    from freehold.deploy.drills import runner, watch
    from freehold.deploy.drills import scenarios as sc
    from freehold.deploy.provision import up
    from freehold.deploy.spec import load_spec

    outcomes: list[DrillResult | Exception] = [
        result(), sc.DrillError("b1: ssh: connect timed out — is the lab up?")]

    def fake_drill(*_a: object, **_k: object) -> DrillResult:
        got = outcomes.pop(0)
        if isinstance(got, Exception):
            raise got
        return got

    monkeypatch.setattr(runner, "run_drill", fake_drill)
    monkeypatch.setattr(runner.Session, "open", classmethod(lambda cls, *a: object()))
    monkeypatch.setattr(watch, "SshHosts", lambda *a: object())
    monkeypatch.setattr(deploy_cmd, "ssh_settings", lambda *a: None)
    monkeypatch.setattr(up, "ca_file_for", lambda c: None)
    spec = REPO / "inventories/production-example.yaml"
    chosen = list(sc.SCENARIOS.values())[:3]
    with pytest.raises(typer.Exit) as stop:
        drill_cmd._run(spec, load_spec(spec), False, chosen, [], tmp_path, True, None, None,
                       True)
    assert stop.value.exit_code == drill_cmd.EXIT_FAILED and not outcomes
    doc = json.loads((tmp_path / "drills.json").read_text())
    assert [d["scenario"] for d in doc["drills"]] == ["leader-kill"]
    assert (tmp_path / "leader-kill.png").exists() and (tmp_path / "index.html").exists()


def test_patroni_members_come_from_the_first_member_that_answers() -> None:
    """The drills' and the lab tests' one way to read Patroni's /cluster."""
    from freehold.deploy.provision.patroni import cluster_members
    from freehold.deploy.spec import load_spec

    spec = load_spec(REPO / "inventories/lab.yaml")
    asked: list[str] = []
    body = json.dumps({"members": [{"name": "b1", "role": "leader"}]})
    answers = {"a1": (7, ""), "b1": (0, "<html>proxy error</html>"), "c1": (0, body)}

    def run(host: str, cmd: str) -> tuple[int, str]:
        asked.append(host)
        assert f"http://{spec.server(host).mesh_address}:" in cmd and "--max-time" in cmd
        return answers[host]

    assert cluster_members(spec, run) == [{"name": "b1", "role": "leader"}]
    assert asked == ["a1", "b1", "c1"]  # refused, then not JSON, then the answer
    asked.clear()
    assert cluster_members(spec, run, exclude={"a1", "c1"}) == [] and asked == ["b1"]


def test_redis_masters_are_given_back_on_the_coordinator_after_a_drill() -> None:
    from freehold.deploy.drills.runner import redis_back
    from freehold.deploy.spec import load_spec
    from freehold.roles.redis.config import LAYOUT, SCRIPT, coordinator

    spec = load_spec(REPO / "inventories/lab.yaml")
    ran: list[tuple[str, str]] = []

    class Fake:
        def __init__(self, code: int, out: str) -> None:
            self.answer = (code, out)

        def run(self, host: str, cmd: str, timeout: float = 30) -> tuple[int, str]:
            ran.append((host, cmd))
            return self.answer

    got = redis_back(spec, Fake(0, "shard 1: 100.96.128.2:6379 -> 100.96.0.2:6379\nok\n"))
    lead = coordinator(spec)
    assert lead is not None and ran == [(lead.name, f"python3 {SCRIPT} apply {LAYOUT}")]
    assert got["ok"] and got["moved"] == ["shard 1: 100.96.128.2:6379 -> 100.96.0.2:6379"]
    bad = redis_back(spec, Fake(1, "timed out after 60s waiting for ..."))
    assert not bad["ok"] and "timed out" in bad["output"]
