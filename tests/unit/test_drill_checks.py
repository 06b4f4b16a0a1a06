"""The drills' scenario-specific checks (issue 21): p99 per site, no failed request, the
followers' and images' checks carried by DrillResult, and backup-site-kill's archiving to the
other repository (fake hosts answering as the lab's would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freehold.deploy.drills import events as ev
from freehold.deploy.drills import scenarios as sc
from freehold.deploy.drills.events import Event
from freehold.deploy.drills.followers import FollowerCheck
from freehold.deploy.drills.media import ImageCheck, png
from freehold.deploy.drills.report import (
    failed_checks,
    latency_table,
    suite_html,
    summary_table,
)
from freehold.deploy.drills.runner import (
    FOLLOWER_CHECK,
    IMAGE_CHECK,
    NO_FAILED_CHECK,
    SiteResult,
    add_follower_check,
    add_image_check,
    add_no_failed_request,
)
from freehold.deploy.drills.watch import (
    archive_max,
    segment_reached,
    wait_protected,
    wal_reaches,
)
from freehold.deploy.spec import load_spec
from tests.unit.test_drills import NODES, FakeHosts, result

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.unit


def timed(site: str, kind: str, t0: float, wait: float, status: int = 200) -> Event:
    return Event(t0, t0 + wait, site, kind, status)


def test_p99_is_a_request_users_waited_for_and_counts_only_the_fault() -> None:
    assert ev.percentile([], 99) is None
    assert ev.percentile([5.0], 99) == 5.0
    waits = [0.01 * i for i in range(1, 101)]  # 10 ms .. 1000 ms
    evs = [timed("a", "write", 10.0 + i * 0.1, w) for i, w in enumerate(waits)]
    evs += [timed("a", "write", 50.0, 9.0), timed("a", "read", 11.0, 0.3, 503),
            timed("b", "write", 11.0, 4.0)]
    lat = ev.latency(evs, "a", "write", 10.0, 20.0)
    assert lat.requests == 100 and lat.errors == 0
    assert lat.p99_ms == pytest.approx(990.0) and lat.p50_ms == pytest.approx(500.0)
    read = ev.latency(evs, "a", "read", 10.0, 20.0)
    assert read.requests == 1 and read.errors == 1 and read.p99_ms == pytest.approx(300.0)
    assert ev.latency(evs, "c", "read", 10.0, 20.0).p99_ms is None


def test_failed_requests_are_every_non_2xx_less_what_is_allowed() -> None:
    evs = [timed("a", "write", 1, 0.1, 201), timed("a", "read", 1, 0.1, 200),
           timed("a", "write", 2, 0.1, 503), timed("b", "read", 2, 5.0, ev.NO_ANSWER),
           timed("b", "write", 3, 0.1, 429)]
    assert ev.failed_requests(evs) == {"0": 1, "429": 1, "503": 1}
    assert ev.failed_requests(evs, frozenset({429})) == {"0": 1, "503": 1}
    assert ev.failed_requests(evs[:2]) == {}


def test_scenarios_carry_their_own_checks() -> None:
    s = sc.SCENARIOS
    assert s["worker-kill"].followers and s["media-kill"].media
    assert s["slow-link"].report_latency
    assert s["rolling-restart"].no_failed_request and not s["rolling-restart"].allowed_statuses
    assert s["backup-site-kill"].during is not None
    assert s["backup-site-kill"].archive_repos is not None
    # the generic ones do not pay for them
    assert not any((s["leader-kill"].followers, s["leader-kill"].media,
                    s["leader-kill"].no_failed_request))


def test_scenario_checks_decide_ok_and_are_named_with_how_many() -> None:
    r = result()
    add_follower_check(r, FollowerCheck(3, 120, 120))
    assert r.ok and r.checks()[FOLLOWER_CHECK]
    r = result()
    add_follower_check(r, FollowerCheck(3, 120, 120, missing={"drill_x": 4, "drill_y": 1}))
    assert not r.ok and not r.checks()[FOLLOWER_CHECK]
    assert failed_checks(r) == [f"{FOLLOWER_CHECK} (2 of 3 followers missed posts (5 missing "
                                "of 120 looked for in each feed))"]
    assert r.to_doc()["details"]["followers"]["missing"] == {"drill_x": 4, "drill_y": 1}
    # a follower whose feed could not be read proves nothing: not ok either
    r = result()
    add_follower_check(r, FollowerCheck(3, 120, 120, unread=["drill_z"]))
    assert not r.checks()[FOLLOWER_CHECK]
    # images: one unreadable fails; none acknowledged before the fault proves nothing
    r = result()
    add_image_check(r, ImageCheck(10, 4, 6))
    assert r.checks()[IMAGE_CHECK]
    r = result()
    add_image_check(r, ImageCheck(10, 4, 6, unreadable=["https://v/media/media/1.png"]))
    assert not r.ok and "1 unreadable" in failed_checks(r)[0]
    r = result()
    add_image_check(r, ImageCheck(3, 0, 3))
    assert not r.checks()[IMAGE_CHECK]
    # no failed request: one 503 (even with Retry-After) fails it
    r = result()
    add_no_failed_request(r, {})
    assert r.checks()[NO_FAILED_CHECK]
    r = result()
    add_no_failed_request(r, {"0": 2, "503": 1})
    assert not r.ok and failed_checks(r) == [f"{NO_FAILED_CHECK} (3 failed: no answer×2, 503×1)"]
    doc = json.loads(json.dumps(r.to_doc()))
    assert doc["checks"][NO_FAILED_CHECK] is False and doc["details"]["failed_requests"]


def test_latency_reaches_the_table_json_and_html(tmp_path: Path) -> None:
    # 2 % of the writes slow: the 99th percentile is one of them
    evs = [timed("a", "write", 5.0 + i * 0.1, 0.2 if i < 98 else 2.5, 201) for i in range(100)]
    lat = ev.latency(evs, "a", "write", 4.0, 20.0)
    site = SiteResult("a", ev.outage(evs, "a", "write", 4.0), ev.outage(evs, "a", "read", 4.0),
                      ev.statuses(evs), False, lat, ev.latency(evs, "a", "read", 4.0, 20.0))
    slow = result(scenario="slow-link", sites=[site], report_latency=True)
    assert slow.to_doc()["sites"][0]["write_latency"]["p99_ms"] == pytest.approx(2500.0)
    assert latency_table([result()]) is None  # only drills that report latency
    table = latency_table([result(), slow])
    assert table is not None and table.row_count == 1
    assert summary_table([slow]).row_count == 1
    r = result()
    add_follower_check(r, FollowerCheck(3, 120, 120, missing={"drill_x": 4}))
    page = suite_html([slow, r], {}, tmp_path / "index.html", "drills").read_text()
    assert "2500" in page and "write p50 / p99 (ms)" in page
    assert "no follower missed a post: NO (1 of 3 followers missed posts (4 missing" in page


def test_drill_pngs_are_valid_and_all_different() -> None:
    a, b = png(b"one"), png(b"two")
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a != b
    from freehold.app.services.media import sniff_image

    assert sniff_image(a) == ("image/png", "png")


def info(top: str | None) -> str:
    """`pgbackrest --output=json info` of a stanza whose archive ends at `top`."""
    archive = [{"database": {"id": 1}, "id": "15-1", "min": "000000010000000000000001",
                "max": top}] if top else []
    return json.dumps([{"name": "freehold", "status": {"code": 0}, "archive": archive}])


def test_archive_max_and_segments_across_timelines() -> None:
    assert archive_max(info("0000000A000000000000002B")) == "0000000A000000000000002B"
    two = json.dumps([{"archive": [{"max": "00000009000000000000002F"},
                                   {"max": "0000000A0000000000000030"}]}])
    assert archive_max(two) == "0000000A0000000000000030"
    assert archive_max(info(None)) is None and archive_max("not json") is None
    # a failover moves the timeline on, the segment number keeps growing
    assert segment_reached("0000000B0000000000000031", "0000000A0000000000000031")
    assert not segment_reached("0000000B0000000000000030", "0000000A0000000000000031")
    assert not segment_reached(None, "0000000A0000000000000031")


class RepoHosts(FakeHosts):
    """The lab with site b down: b1, b2, b3 (repo1) answer nothing; the leader a1 writes
    segment 0x31; c3's repository (repo2) lists `repo2_top`."""

    def __init__(self, repo2_top: str | None) -> None:
        super().__init__()
        self.repo2_top = repo2_top

    def run(self, host: str, cmd: str, timeout: float = 20.0) -> tuple[int | None, str]:
        if host.startswith("b"):
            self.commands.append((host, cmd))
            return None, ""
        if "pg_walfile_name" in cmd:
            self.commands.append((host, cmd))
            return 0, "0000000A0000000000000031\n"
        if "pgbackrest" in cmd and "info" in cmd:
            self.commands.append((host, cmd))
            return 0, info(self.repo2_top)
        if "CLUSTER INFO" in cmd:
            return 0, "cluster_state:ok\n----\n" + NODES.replace(
                "slave,fail m3 0 0 3 disconnected", "slave m3 0 0 3 connected")
        if "pg_stat_archiver" in cmd:  # archive-push fails while repo1 is away
            self.commands.append((host, cmd))
            return 0, "100|200"
        return super().run(host, cmd, timeout)


def lab_ctx(hosts: FakeHosts) -> sc.Ctx:
    ctx = sc.Ctx(load_spec(REPO / "inventories" / "lab.yaml"), hosts, None, "a1")
    ctx.state["down"] = ["b1", "b2", "b3"]
    return ctx


def test_backup_site_kill_targets_the_first_repositorys_site() -> None:
    ctx = lab_ctx(FakeHosts())
    first, other = sc._repositories(ctx)
    assert (first.name, other.name) == ("b3", "c3")
    scn = sc.SCENARIOS["backup-site-kill"]
    assert scn.down_sites(ctx) == {"b"} and scn.archive_repos is not None
    assert scn.archive_repos(ctx) == ["c3"]
    with pytest.raises(sc.DrillError, match="lab only"):
        scn.inject(ctx)  # power loss: lab only


def test_backup_site_kill_needs_two_repositories() -> None:
    spec = load_spec(REPO / "inventories" / "lab.yaml")
    spec = spec.model_copy(update={"roles": {**spec.roles, "backup": {"repositories": 1}}})
    with pytest.raises(sc.DrillError, match="one pgBackRest repository"):
        sc._repositories(sc.Ctx(spec, FakeHosts(), None, "a1"))


def test_archiving_goes_on_to_the_other_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = RepoHosts("0000000A0000000000000031")
    ctx = lab_ctx(hosts)
    sc._archive_goes_on(ctx)
    name = "WAL archived to the other repository"
    assert ctx.state["checks"] == {name: True}
    assert "reached repo2 c3" in ctx.state["notes"][name]
    detail = ctx.state["details"]["archive_while_down"]
    assert detail["segment"] == "0000000A0000000000000031" and detail["primary"] == "a1"
    on = [(h, c) for h, c in hosts.commands if "pgbackrest" in c]
    assert on and {h for h, _ in on} == {"c3"}  # the dead repository is not asked
    assert any(h == "a1" and "pg_switch_wal" in c for h, c in hosts.commands)
    # the segment never shows up in repo2: the check fails, within its bound
    monkeypatch.setattr(sc, "ARCHIVE_LIMIT_S", 0.0)
    ctx = lab_ctx(RepoHosts("0000000A0000000000000030"))
    sc._archive_goes_on(ctx)
    assert ctx.state["checks"] == {name: False}
    assert "not in repo2 c3's archive" in ctx.state["notes"][name]


def test_wal_reaches_is_bounded() -> None:
    got = wal_reaches(RepoHosts(None), "a1", ["c3"], limit_s=0.05, every=0.01)
    assert not got.ok and got.segment == "0000000A0000000000000031"


def test_protection_wait_does_not_need_the_dead_repository() -> None:
    spec = load_spec(REPO / "inventories" / "lab.yaml")
    # (Patroni's /cluster answers as before the fault in this fake: the WAL check is the point)
    # pg_stat_archiver says failing (repo1 away): the default wait never sees WAL archived
    p = wait_protected(spec, RepoHosts("0000000A0000000000000031"), since=50.0, limit_s=0.2,
                       every=0.01, clock=lambda: 60.0)
    assert p.wal_archiving_s is None and not p.ok
    # measured on the surviving repository: archived
    hosts = RepoHosts("0000000A0000000000000031")
    p = wait_protected(spec, hosts, since=50.0, limit_s=5.0, every=0.01, clock=lambda: 60.0,
                       repos=["c3"])
    assert p.wal_archiving_s == 10.0 and "c3" in p.notes[0]
    assert not any("pg_stat_archiver" in c for _, c in hosts.commands)
    assert {h for h, c in hosts.commands if "pgbackrest" in c} == {"c3"}


def test_cli_lists_the_backup_site_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from freehold.deploy.cli import app

    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(app, ["drill", "inventories/lab.yaml", "--list"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("backup-site-kill"))
    assert "lab only" in line and "≤30 s" in line
