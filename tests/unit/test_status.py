"""`freehold status` without servers: probe scripts, section parsing and the classification of
sample Patroni / etcd / Redis / HAProxy / Alertmanager / pgBackRest answers; exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freehold.deploy.cli import app as cli_app
from freehold.deploy.ops.probes import (
    MARK,
    match_units,
    parse_sections,
    parse_unit_states,
    probe_script,
    units_for,
)
from freehold.deploy.ops.remote import Outcome, run_many
from freehold.deploy.ops.restore_drill import compare, counts_script, latest_backup, parse_counts
from freehold.deploy.ops.status import (
    DEGRADED,
    DOWN,
    NOT_DEPLOYED,
    OK,
    classify,
    classify_alerts,
    classify_app,
    classify_backup,
    classify_etcd,
    classify_haproxy,
    classify_patroni,
    classify_queues,
    classify_redis,
)
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.deploy.ssh import SSHSettings

ROOT = Path(__file__).resolve().parents[2]
PG = ["a1", "b1", "c1"]


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(ROOT / "inventories" / "lab.yaml")


def patroni_doc(**changes: dict) -> str:
    members = {
        "a1": {"name": "a1", "role": "leader", "state": "running", "timeline": 3,
               "host": "100.96.0.1", "port": 5432},
        "b1": {"name": "b1", "role": "sync_standby", "state": "streaming", "timeline": 3,
               "lag": 0},
        "c1": {"name": "c1", "role": "replica", "state": "streaming", "timeline": 3,
               "lag": 4096},
    }
    for name, change in changes.items():
        if change is None:
            members.pop(name)
        else:
            members[name].update(change)
    return json.dumps({"members": list(members.values()), "scope": "lab"})


# ---- Patroni -------------------------------------------------------------------------------

def test_patroni_healthy() -> None:
    comp = classify_patroni({"a1": patroni_doc()}, PG)
    assert comp.state == OK and not comp.problems
    assert [(r["member"], r["role"], r["lag_mb"]) for r in comp.rows] == [
        ("a1", "leader", None), ("b1", "sync_standby", 0.0), ("c1", "replica", 0.0)]


def test_patroni_faults() -> None:
    assert classify_patroni({"b1": patroni_doc(a1={"role": "replica", "state": "stopped"})},
                            PG).state == DOWN                                   # no leader
    comp = classify_patroni({"a1": patroni_doc(b1={"role": "replica"})}, PG)
    assert comp.state == DEGRADED and comp.problems == ["no synchronous standby"]
    comp = classify_patroni({"a1": patroni_doc(c1={"lag": 64 * 1048576})}, PG)
    assert comp.state == DEGRADED and "c1: 64.0 MB behind" in comp.problems
    comp = classify_patroni({"a1": patroni_doc(c1=None)}, PG)
    assert comp.state == DEGRADED and "c1: not a member" in comp.problems
    comp = classify_patroni({"a1": patroni_doc(c1={"state": "starting", "lag": "unknown"})}, PG)
    assert "c1: starting" in comp.problems
    assert classify_patroni({}, PG).state == DOWN
    assert classify_patroni({"a1": "curl: (7) Failed"}, PG).state == DOWN


# ---- etcd, Redis ---------------------------------------------------------------------------

def test_etcd() -> None:
    good = '{"health":"true","reason":""}'
    assert classify_etcd({"a1": good, "b1": good, "c1": good}, PG).state == OK
    comp = classify_etcd({"a1": good, "b1": good, "c1": None}, PG)
    assert comp.state == DEGRADED and comp.problems == ["c1: unhealthy"]
    comp = classify_etcd({"a1": good, "b1": '{"health":"false","reason":"RAFT NO LEADER"}',
                          "c1": None}, PG)
    assert comp.state == DOWN and any("quorum lost" in p for p in comp.problems)
    assert comp.rows[1]["reason"] == "RAFT NO LEADER"


CLUSTER_OK = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n" \
             "cluster_known_nodes:6\r\n"


def test_redis() -> None:
    nodes = ["a1", "a2", "b1"]
    assert classify_redis({n: CLUSTER_OK for n in nodes}, nodes).state == OK
    comp = classify_redis({"a1": CLUSTER_OK, "a2": CLUSTER_OK.replace(":ok", ":fail"),
                           "b1": None}, nodes)
    assert comp.state == DEGRADED
    assert comp.problems == ["a2: cluster_state fail", "b1: cluster_state no answer"]
    assert classify_redis({n: None for n in nodes}, nodes).state == DOWN


def test_queue_depths_from_xinfo() -> None:
    text = ("# stream:posts\n"
            '[{"name":"fanout","consumers":2,"pending":3,"last-delivered-id":"1-0",'
            '"entries-read":10,"lag":0}]\n# stream:events\n'
            '[{"name":"notify","consumers":1,"pending":0,"lag":25000}]\n')
    comp = classify_queues({"a1": None, "b1": text})
    assert [(r["stream"], r["group"], r["pending"], r["lag"]) for r in comp.rows] == [
        ("stream:posts", "fanout", 3, 0), ("stream:events", "notify", 0, 25000)]
    assert comp.state == DEGRADED and "25000 entries" in comp.problems[0]
    empty = classify_queues({"a1": "# stream:posts\nERR no such key\n"})
    assert empty.state == OK and empty.rows == []


# ---- HAProxy, app, alerts, backup ---------------------------------------------------------

HAPROXY_CSV = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,"
               "eresp,wretr,wredis,status\n"
               "web,FRONTEND,,,0,1,,1,0,0,0,0,0,,,,,OPEN\n"
               "app,a3,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP\n"
               "app,b3,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN\n"
               "app,BACKEND,0,0,0,1,,1,0,0,0,0,,0,0,0,0,UP\n")


def test_haproxy_backends() -> None:
    comp = classify_haproxy({"a2": HAPROXY_CSV, "b2": None}, ["a2", "b2"])
    assert [(r["server"], r["status"]) for r in comp.rows] == [("a3", "UP"), ("b3", "DOWN")]
    assert comp.state == DEGRADED
    assert comp.problems == ["a2: app/b3 DOWN", "b2: no stats"]
    assert classify_haproxy({"a2": HAPROXY_CSV.replace("DOWN", "UP 2/3")}, ["a2"]).state == OK


def test_app_releases_and_readiness() -> None:
    rel = "/opt/freehold/releases/0.1.0-abc123"
    comp = classify_app({"a3": rel, "b3": rel}, {"a3": "200", "b3": "200"}, ["a3", "b3"])
    assert comp.state == OK and comp.rows[0]["release"] == "0.1.0-abc123"
    comp = classify_app({"a3": rel, "b3": "/opt/freehold/releases/0.1.0-def456"},
                        {"a3": "200", "b3": "503"}, ["a3", "b3"])
    assert comp.problems == ["b3: /readyz 503", "mixed releases: 0.1.0-abc123, 0.1.0-def456"]


ALERT = {"labels": {"alertname": "ServerDown", "severity": "critical", "instance": "c3"},
         "annotations": {"summary": "c3 does not answer"}, "startsAt": "2026-11-30T05:00:00Z",
         "status": {"state": "active"}}


def test_alerts() -> None:
    assert classify_alerts({"a2": "[]", "c2": "[]"}, ["a2", "c2"]).state == OK
    comp = classify_alerts({"a2": json.dumps([ALERT]), "c2": None}, ["a2", "c2"])
    assert comp.state == DEGRADED and comp.rows[0]["instance"] == "c3"
    assert comp.problems == ["c2: Alertmanager does not answer", "ServerDown c3"]
    assert classify_alerts({"a2": None, "c2": None}, ["a2", "c2"]).state == DOWN


def pgbackrest_info(age_s: float, code: int = 0) -> str:
    now = time.time()
    return json.dumps([{"name": "freehold", "status": {"code": code, "message": "ok"},
                        "archive": [{"min": "000000010000000000000003",
                                     "max": "00000001000000000000000A"}],
                        "backup": [{"label": "20261130-020000F", "type": "full",
                                    "timestamp": {"start": now - age_s - 60,
                                                  "stop": now - age_s}}]}])


def test_backup() -> None:
    comp = classify_backup(pgbackrest_info(3600))
    assert comp.state == OK and comp.rows[0]["last"] == "20261130-020000F"
    assert classify_backup(pgbackrest_info(3 * 86400)).state == DEGRADED
    assert classify_backup(pgbackrest_info(60, code=2)).state == DEGRADED
    none = json.dumps([{"name": "freehold", "status": {"code": 2, "message": "no valid backups"},
                        "backup": []}])
    assert classify_backup(none).state == DOWN
    assert classify_backup(None).state == DOWN
    assert latest_backup(pgbackrest_info(60)) == "20261130-020000F"
    assert latest_backup(none) is None


# ---- probes, sections, units ---------------------------------------------------------------

def test_probe_script_per_role(spec: ClusterSpec) -> None:
    a1 = probe_script(spec, spec.server("a1"))
    for section in ("units", "patroni", "etcd", "redis", "streams"):
        assert f"'{MARK}{section}'" in a1
    assert "alerts" not in a1 and "haproxy" not in a1
    assert "REDISCLI_AUTH=$(awk" in a1 and "requirepass" in a1  # read there, never argv
    c2 = probe_script(spec, spec.server("c2"))
    assert "/api/v2/alerts" in c2 and "8008" not in c2
    b3 = probe_script(spec, spec.server("b3"))                  # the repository host
    assert "pgbackrest --stanza=freehold --output=json info" in b3
    assert "unit-patterns" in b3 and "freehold-app*.service" in b3
    assert "freehold-backup-full.timer" in units_for(spec, spec.server("b3"))["backup"]
    # the second repository's host (another site) is probed the same way
    c3 = probe_script(spec, spec.server("c3"))
    assert "pgbackrest --stanza=freehold --output=json info" in c3
    assert "freehold-backup-full.timer" in units_for(spec, spec.server("c3"))["backup"]
    one = spec.model_copy(update={"roles": {**spec.roles, "backup": {"repositories": 1}}})
    assert units_for(one, one.server("c3"))["backup"] == []


def test_sections_and_units() -> None:
    out = (f"{MARK}units\nId=etcd.service\nLoadState=loaded\nActiveState=active\nSubState=running"
           "\n\nId=pdns.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n\n"
           "Id=patroni.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\n"
           f"{MARK}rc 0\n{MARK}unit-patterns\n"
           "freehold-worker@fanout.service loaded active running Worker\n"
           "freehold-worker@notify.service loaded failed failed Worker\n"
           f"{MARK}rc 0\n{MARK}etcd\ncurl: (28) timeout\n{MARK}rc 124\n")
    sections = parse_sections(out)
    assert sections["etcd"] == (124, "curl: (28) timeout")
    states = parse_unit_states(sections)
    assert states["etcd.service"] == "active" and states["pdns.service"] == "missing"
    got = match_units(["etcd.service", "patroni.service", "pdns.service",
                       "freehold-worker*.service", "freehold-app*.service"], states)
    assert got == {"etcd.service": "active", "patroni.service": "failed",
                   "pdns.service": "missing", "freehold-worker*.service": "failed",
                   "freehold-app*.service": "missing"}


def _outcome(name: str, units: dict[str, str], extra: str = "") -> Outcome:
    blocks = "\n\n".join(f"Id={u}\nLoadState={'not-found' if s == 'missing' else 'loaded'}\n"
                         f"ActiveState={'inactive' if s == 'missing' else s}"
                         for u, s in units.items())
    return Outcome(name, True, 0, f"{MARK}units\n{blocks}\n{MARK}rc 0\n{extra}")


def cluster_outcomes(spec: ClusterSpec, backup: str | None = None,
                     alerts: str = "[]") -> dict[str, Outcome]:
    """Every server answers with its units active except: dns and the roles this kit does not
    deploy yet are missing (not deployed), c3 is dead, and Patroni has no sync standby; the
    repository host b3 answers `backup` (a day-old backup by default), Alertmanager `alerts`."""
    outcomes = {}
    for srv in spec.servers:
        if srv.name == "c3":
            outcomes[srv.name] = Outcome("c3", False, error="TimeoutError: timed out")
            continue
        units = {}
        for role, us in units_for(spec, srv).items():
            for u in us:
                units[u] = "missing" if role in ("dns", "lb", "app", "worker") else "active"
        extra = ""
        if srv.has("postgres"):
            extra += f"{MARK}patroni\n{patroni_doc(b1={'role': 'replica'})}\n{MARK}rc 0\n"
        if srv.has("etcd"):
            extra += f"{MARK}etcd\n{{\"health\":\"true\"}}\n{MARK}rc 0\n"
        if srv.has("redis"):
            extra += f"{MARK}redis\n{CLUSTER_OK}{MARK}rc 0\n"
        if srv.has("monitoring"):
            extra += f"{MARK}alerts\n{alerts}\n{MARK}rc 0\n"
        if srv.name == "b3":
            extra += f"{MARK}backup\n{backup or pgbackrest_info(60)}\n{MARK}rc 0\n"
        outcomes[srv.name] = _outcome(srv.name, {u: s for u, s in units.items()
                                                 if "*" not in u}, extra)
    return outcomes


def test_classify_whole_cluster(spec: ClusterSpec) -> None:
    report = classify(spec, cluster_outcomes(spec))
    comps = report.components
    assert comps["role dns"].state == NOT_DEPLOYED and comps["role lb"].state == NOT_DEPLOYED
    assert "haproxy" not in comps and "app" not in comps     # nothing to ask
    assert comps["role loadgen"].state == DOWN                      # its only server is dead
    assert comps["etcd health"].state == OK
    assert comps["role etcd"].state == OK and comps["redis cluster"].state == OK
    assert comps["patroni"].problems == ["no synchronous standby"]
    # repo1 (b3) holds a day-old backup; repo2's host (c3) is dead: degraded, not down
    assert comps["backup"].state == DEGRADED
    assert comps["backup"].problems == ["repo2 c3: repository host does not answer"]
    assert [r["repository"] for r in comps["backup"].rows] == ["repo1 b3"]
    c3 = next(s for s in report.servers if s["server"] == "c3")
    assert c3["up"] is False and set(c3["roles"].values()) == {DOWN}
    assert not report.ok
    assert "patroni: no synchronous standby" in report.problems
    assert "role backup: c3: server down" in report.problems
    assert comps["role worker"].state == NOT_DEPLOYED   # c3 is dead, a3 and b3 have none
    doc = report.to_doc()
    assert doc["ok"] is False and json.loads(json.dumps(doc)) == doc


def test_a_probe_answer_that_cannot_be_parsed_is_down_not_skipped(spec: ClusterSpec) -> None:
    """pgBackRest and Alertmanager answering JSON of another shape: those components are
    down, saying why in one line, and the rest of the cluster is still classified."""
    report = classify(spec, cluster_outcomes(spec, backup="[1]", alerts='["firing"]'))
    comps = report.components
    for name, prefix in (("backup", "repo1 b3: "), ("alerts", "")):
        assert comps[name].state == DOWN, comps[name]  # backup: repo2's host is dead too
        assert comps[name].problems[0].startswith(
            f"{prefix}its probe's answer could not be read (AttributeError: "), \
            comps[name].problems
    assert comps["etcd health"].state == OK and not report.ok


def test_a_wrong_backup_repository_is_an_error_not_a_pass(spec: ClusterSpec) -> None:
    """roles.backup.repo_host naming a server without the backup role: the backup cannot be
    checked, which status says (it used to drop the backup check, and its timer, silently)."""
    wrong = spec.model_copy(update={"roles": {**spec.roles, "backup": {"repo_host": "a1"}}})
    assert units_for(wrong, wrong.server("b3"))["backup"] == []  # probed nowhere...
    comp = classify(wrong, cluster_outcomes(wrong)).components["backup"]  # ...and said so
    assert comp.state == DOWN
    assert comp.problems[0].startswith("cannot tell which server holds the backups: ")
    assert "roles.backup.repo_host 'a1' is not a backup server" in comp.problems[0]
    # no server with the role backup at all: nothing to check, no error
    servers = [s.model_copy(update={"roles": [r for r in s.roles if r != "backup"]})
               for s in spec.servers]
    none = spec.model_copy(update={"servers": servers})
    assert "backup" not in classify(none, cluster_outcomes(none)).components


def test_run_many_is_bounded_for_dead_servers(spec: ClusterSpec) -> None:
    """An address nobody answers on (TEST-NET-1, unroutable here) is reported within the
    connect timeout, in parallel."""
    dead = [s.model_copy(update={"public_address": "192.0.2.1", "name": f"x{i}"})
            for i, s in enumerate(spec.servers[:4])]
    started = time.monotonic()
    out = run_many(dead, lambda s: "true", SSHSettings(connect_timeout=1.0, parallel=4))
    assert time.monotonic() - started < 8
    assert {o.reachable for o in out.values()} == {False} and len(out) == 4


# ---- restore drill (pure parts) ------------------------------------------------------------

def test_drill_counts_and_comparison() -> None:
    assert parse_counts("freehold|public.posts|12\nfreehold|public.users|3\nnoise\n") == {
        "freehold/public.posts": 12, "freehold/public.users": 3}
    rows = compare({"freehold/public.posts": 12, "freehold/public.users": 3},
                   {"freehold/public.posts": 11, "freehold/public.extra": 1})
    assert [(r["table"], r["match"]) for r in rows] == [
        ("public.extra", False), ("public.posts", False), ("public.users", False)]
    assert all(compare({"d/t": 1}, {"d/t": 1})[0][k] for k in ("match",))
    script = counts_script("psql -XAtq")
    assert "query_to_xml" in script and "datistemplate" in script


# ---- CLI -----------------------------------------------------------------------------------

def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["status", str(tmp_path / "none.yaml")],
                 ["backup", "restore-drill", str(tmp_path / "none.yaml")],
                 ["status", str(ROOT / "inventories/lab.yaml"), "--ssh-key",
                  str(tmp_path / "nokey")]):
        res = runner.invoke(cli_app, args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output
    no_backup = tmp_path / "nobackup.yaml"
    no_backup.write_text((ROOT / "inventories/lab.yaml").read_text().replace(
        ", backup]", "]").replace("[backup, ", "["))
    res = runner.invoke(cli_app, ["backup", "restore-drill", str(no_backup)])
    assert res.exit_code == 2 and "role backup" in res.output


def test_status_exit_code_follows_the_report(spec: ClusterSpec, monkeypatch) -> None:
    from freehold.deploy.ops import status as status_mod

    for healthy, code, flags in ((True, 0, []), (False, 1, ["--deep"]), (True, 0, ["--ssh-all"])):
        comps = {"etcd": status_mod.Component("etcd", OK if healthy else DEGRADED)}
        report = status_mod.StatusReport(spec.name, [], comps)
        asked: dict = {}

        def gather(*_a, r=report, asked=asked, **kw):
            asked.update(kw)
            return r

        monkeypatch.setattr(status_mod, "gather", gather)
        res = CliRunner().invoke(cli_app, ["status", str(ROOT / "inventories/lab.yaml"),
                                           "--json", *flags])
        assert res.exit_code == code, res.output
        assert json.loads(res.output)["ok"] is healthy
        assert asked["deep"] is bool(flags), (flags, asked)   # --deep, --ssh-all: every server
