"""On-call operations on the lab: monitoring targets up, an alert and `freehold status` while a
server is dead and ok again after it is back, a restore drill that passes.

Runs on the session's main lab (inventories/lab.yaml, the `main_lab` fixture) after
tests/lab/test_platform.py (file order) has stood the whole platform up with the same secrets. Set
FREEHOLD_OPS_LAB_SPEC to run on another lab spec that is already up (development)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from freehold.deploy.provision.drill import leader, patroni_cluster
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.roles.backup.config import (
    FULL_UNIT,
    REPO_SSH_EVERY_S,
    REPO_SSH_UNIT,
    RESTORE_COMMAND,
    drill_host,
    repo_host,
    repo_hosts,
)
from freehold.roles.monitoring.config import PROMETHEUS_PORT, scrape_jobs
from freehold.roles.registry import ROLE_ORDER
from tests.lab.cli import LAB_SPEC, LabSecrets, freehold
from tests.lab.conftest import lab_named_by
from tests.waiting import wait_for as shared_wait_for

VICTIM = "c3"  # second backup repository, drill server, worker, loadgen: no quorum needs it


@pytest.fixture(scope="module")
def spec_path() -> Path:
    return Path(os.environ.get("FREEHOLD_OPS_LAB_SPEC") or LAB_SPEC)


@pytest.fixture(scope="module")
def lab(spec_path: Path, request: pytest.FixtureRequest) -> Any:
    return lab_named_by("FREEHOLD_OPS_LAB_SPEC", spec_path, request)


@pytest.fixture(scope="module")
def spec(spec_path: Path) -> ClusterSpec:
    return load_spec(spec_path)


@pytest.fixture(scope="module")
def secrets_env(lab: Any) -> tuple[Path, bytes]:
    """The secrets tests/lab/test_deploy.py and test_platform.py deployed with."""
    secrets = LabSecrets.of(lab)
    return secrets.path, secrets.key


def run(lab: Any, host: str, cmd: str, timeout: float = 60) -> str:
    r = lab.run(host, cmd, timeout=timeout)
    assert r.returncode == 0, f"{host}: {cmd}: {r.stderr or r.stdout}"
    return r.stdout


wait_for = partial(shared_wait_for, every=2.0)


@pytest.fixture(scope="module")
def deployed(lab: Any, spec: ClusterSpec, spec_path: Path,
             secrets_env: tuple[Path, bytes]) -> dict[str, Any]:
    """monitoring and backup deployed (and base again: the firewall opens exporter ports);
    the whole spec when the data tier is not there yet; nothing when test_deploy.py's deploy
    of every role already did it."""
    from freehold.deploy.provision.drill import deploy_subprocess

    mon = spec.servers_with_role("monitoring")[0].name
    there = (lab.run(mon, "systemctl is-active prometheus", timeout=30).stdout.strip(),
             lab.run(repo_host(spec).name, f"systemctl is-enabled {FULL_UNIT}.timer",
                     timeout=30).stdout.strip())
    if there == ("active", "enabled"):
        return {"ok": True, "deployed": False}
    pg = spec.servers_with_role("postgres")[0].name
    data_tier = lab.run(pg, "systemctl is-active patroni", timeout=30).stdout.strip()
    args = ["--roles", "base,monitoring,backup"] if data_tier == "active" else []
    code, doc = deploy_subprocess(spec_path, *secrets_env, args, timeout=2700)
    assert code == 0 and doc["ok"], (doc.get("stopped"), [
        r for r in doc["results"] if r["status"] in ("failed", "unreachable")])
    return doc


def prometheus_get(lab: Any, spec: ClusterSpec, path: str) -> Any:
    mon = spec.servers_with_role("monitoring")[0]
    out = run(lab, mon.name, f"curl -s -g -m 5 'http://{mon.mesh_address}:{PROMETHEUS_PORT}"
                             f"{path}'")
    return json.loads(out)


def test_monitoring_targets_up(deployed: dict[str, Any], lab: Any, spec: ClusterSpec) -> None:
    jobs = scrape_jobs(spec)
    expected = {(job, s.name) for job, j in jobs.items() for s in j["servers"]}

    def health() -> dict[tuple[str, str], str] | None:
        doc = prometheus_get(lab, spec, "/api/v1/targets?state=active")
        got = {(t["labels"]["job"], t["labels"]["instance"]): t["health"]
               for t in doc["data"]["activeTargets"]}
        return got if got.keys() == expected and set(got.values()) == {"up"} else None

    try:
        wait_for("every target up", health, timeout=90)
    except AssertionError:
        doc = prometheus_get(lab, spec, "/api/v1/targets?state=active")
        down = [(t["labels"]["job"], t["labels"]["instance"], t["lastError"])
                for t in doc["data"]["activeTargets"] if t["health"] != "up"]
        raise AssertionError(f"targets not up: {down}") from None
    # a metric from each kind of exporter, over the mesh. Bounded wait: a scrape lags the
    # state by up to its interval (a member that just came back from the drills before this
    # file reads "starting" until the next scrape).
    for query, minimum in (("count(up{job=\"node\"} == 1)", len(spec.servers)),
                           ("count(pg_up == 1)", 3), ("count(redis_up == 1)", 6),
                           ("count(patroni_postgres_running == 1)", 3)):
        got = metric_reaches(lab, spec, query, minimum, timeout=60)
        assert got is not None and got >= minimum, f"{query}: {got}, want >= {minimum}"


def metric_reaches(lab: Any, spec: ClusterSpec, query: str, minimum: float,
                   timeout: float) -> float | None:
    """The query's first value once it is >= minimum, or the last value seen at the timeout."""
    last: float | None = None
    deadline = time.monotonic() + timeout
    while True:
        doc = prometheus_get(lab, spec, f"/api/v1/query?query={quote(query, safe='')}")
        result = doc["data"]["result"]
        last = float(result[0]["value"][1]) if result else None
        if (last is not None and last >= minimum) or time.monotonic() > deadline:
            return last
        time.sleep(2.0)


def test_rules_and_config_pass_promtool_on_the_servers(deployed: dict[str, Any], lab: Any,
                                                       spec: ClusterSpec) -> None:
    for mon in spec.servers_with_role("monitoring"):
        out = run(lab, mon.name, "promtool check rules /etc/prometheus/rules/freehold.yml && "
                                 "promtool check config /etc/prometheus/prometheus.yml 2>&1")
        assert "SUCCESS" in out
        rules = prometheus_get(lab, spec, "/api/v1/rules")["data"]["groups"]
        names = {r["name"] for g in rules for r in g["rules"]}
        assert {"PostgresPrimaryLost", "EtcdUnhealthy", "RedisClusterNotOk"} <= names


def backup_info(lab: Any, repo: str) -> dict[str, Any]:
    """`pgbackrest info` of the stanza in the repository on `repo`."""
    return dict(json.loads(run(lab, repo, "cd / && runuser -u postgres -- pgbackrest "
                                          "--stanza=freehold --output=json info"))[0])


def test_backup_archiving_and_timer(deployed: dict[str, Any], lab: Any,
                                    spec: ClusterSpec) -> None:
    repos = repo_hosts(spec)
    assert [r.name for r in repos] == ["b3", "c3"]  # two sites: losing one keeps a repository
    for repo in repos:
        assert run(lab, repo.name, f"systemctl is-enabled {FULL_UNIT}.timer").strip() == \
            "enabled", repo.name
        info = backup_info(lab, repo.name)
        assert info["status"]["code"] == 0 and info["backup"], (repo.name, info)
    pg = spec.servers_with_role("postgres")[0].name
    conf = run(lab, pg, "cd / && runuser -u postgres -- patronictl -c /etc/patroni/config.yml "
                        "show-config")
    assert "pgbackrest --stanza=freehold archive-push %p" in conf
    # standbys read the archive: a promotion sees every timeline's history (Patroni #890)
    assert RESTORE_COMMAND in conf
    # on every standby (a primary never reads it, and Patroni leaves a promoted member's as
    # it was); Patroni reloads a standby with it on its next loop (loop_wait 1 s)
    leader = primary(lab, spec)
    show = "cd / && runuser -u postgres -- psql -XAtq -c 'SHOW restore_command'"
    for member in spec.servers_with_role("postgres"):
        if member.name != leader:
            wait_for(f"restore_command on {member.name}",
                     lambda m=member.name: run(lab, m, show).strip() == RESTORE_COMMAND or None,
                     timeout=30, every=2)
    # every PostgreSQL server holds an SSH connection open to each repository host, so no
    # promotion sets one up; on a standby (whose PostgreSQL asks the repositories nothing
    # while it streams) a connection closed is opened again by the keep-open unit, within
    # its period
    for member in spec.servers_with_role("postgres"):
        assert run(lab, member.name, f"systemctl is-active {REPO_SSH_UNIT}").strip() == \
            "active", member.name
        for repo in repos:
            mux = f"cd / && runuser -u postgres -- ssh -O {{}} postgres@{repo.mesh_address} 2>&1"
            if member.name != leader:
                run(lab, member.name, mux.format("exit") + "; true")

            def opened(m: str = member.name, c: str = mux.format("check")) -> str | None:
                out = run(lab, m, c + "; echo rc=$?")
                return out if "rc=0" in out else None

            out = wait_for(f"{member.name}: connection to {repo.name}", opened,
                           timeout=3 * REPO_SSH_EVERY_S + 10)
            if member.name != leader:
                pid = re.search(r"pid=(\d+)", out)
                assert pid, out
                cgroup = run(lab, member.name, f"cat /proc/{pid.group(1)}/cgroup")
                assert f"{REPO_SSH_UNIT}.service" in cgroup, (member.name, repo.name, cgroup)
    # the command itself, as PostgreSQL runs it (as postgres, in the data directory): the
    # first timeline's history exists nowhere (exit 1, nothing written), and a history asked
    # of the repositories comes back whole when one holds it
    probe = ("cd /var/lib/postgresql/15/freehold && runuser -u postgres -- sh -c "
             "'{cmd}; echo rc=$?; test -e /tmp/freehold-probe && echo written; "
             "rm -f /tmp/freehold-probe'")
    for member in spec.servers_with_role("postgres"):
        cmd = RESTORE_COMMAND.replace("%f", "00000001.history").replace("%p",
                                                                         "/tmp/freehold-probe")
        out = run(lab, member.name, probe.format(cmd=cmd))
        assert "rc=1" in out and "written" not in out, (member.name, out)


def status(spec_path: Path) -> tuple[int, dict[str, Any], float]:
    return freehold(["status", str(spec_path), "--json"], timeout=120)


def wait_status_ok(spec_path: Path, what: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """`freehold status` until it exits 0; a timeout says status's last problems."""
    seen: list[Any] = []

    def healthy() -> Any:
        code, doc, _ = status(spec_path)
        seen[:] = [doc.get("problems") if isinstance(doc, dict) else doc]
        return (code, doc) if code == 0 else None

    try:
        return wait_for(what, healthy, timeout=timeout, every=5)
    except AssertionError as e:  # what status found wrong, not just "last: None"
        raise AssertionError(f"{e}; status's last problems: {seen}") from None


def test_status_ok_on_a_healthy_cluster(deployed: dict[str, Any], spec_path: Path,
                                        spec: ClusterSpec) -> None:
    code, doc = wait_status_ok(spec_path, "status ok", timeout=120)
    assert doc["ok"] and not doc["problems"]
    comps = doc["components"]
    for name in ("patroni", "etcd health", "redis cluster", "alerts", "backup"):
        assert comps[name]["state"] == "ok", (name, comps[name])
    assert {r["role"] for r in comps["patroni"]["rows"]} >= {"leader", "sync_standby"}
    for role in ("lb", "app", "worker", "dns"):
        if role not in ROLE_ORDER and f"role {role}" in comps:
            assert comps[f"role {role}"]["state"] == "not deployed", (role, comps[f"role {role}"])


@pytest.fixture
def victim_killed(lab: Any, spec: ClusterSpec) -> Iterator[str]:
    lab.kill(VICTIM)
    try:
        yield VICTIM
    finally:
        lab.start(VICTIM, wait=True, timeout=180)


def test_dead_server_alert_and_status(deployed: dict[str, Any], lab: Any, spec: ClusterSpec,
                                      spec_path: Path, victim_killed: str) -> None:
    code, doc, seconds = status(spec_path)
    assert code == 1 and not doc["ok"]
    row = next(s for s in doc["servers"] if s["server"] == victim_killed)
    assert row["up"] is False and set(row["roles"].values()) == {"down"}
    # the dead server is given up on after the connect timeout (3 s), whatever the load
    assert row["seconds"] < 8, row
    assert seconds < 120, f"status took {seconds:.1f} s with a dead server"

    def alert() -> Any:
        code, doc, _ = status(spec_path)
        rows = doc["components"].get("alerts", {}).get("rows", [])
        hit = [r for r in rows if r["alert"] == "ServerDown" and r["instance"] == victim_killed]
        return (code, hit) if hit else None

    code, hit = wait_for("ServerDown alert in freehold status", alert, timeout=300, every=5)
    assert code == 1 and hit[0]["severity"] == "critical"
    backup = status(spec_path)[1]["components"]["backup"]  # repo2's host is the dead one
    assert backup["state"] == "degraded" and backup["problems"] == [
        f"repo2 {victim_killed}: repository host does not answer"], backup


def test_archiving_goes_on_without_the_second_repository(deployed: dict[str, Any], lab: Any,
                                                         spec: ClusterSpec,
                                                         victim_killed: str) -> None:
    """The second repository's host (site c) dead: a WAL segment switched on the primary still
    reaches the first repository (site b) — archive-async pushes to the repositories it can
    reach."""
    first = repo_host(spec).name
    assert victim_killed == repo_hosts(spec)[1].name != first
    leader = primary(lab, spec)
    psql = "cd / && runuser -u postgres -- psql -XAtq -d freehold -c"
    wal = run(lab, leader, f"{psql} \"SELECT pg_walfile_name(pg_current_wal_lsn())\"").strip()
    run(lab, leader, f"{psql} 'CREATE TABLE IF NOT EXISTS ops_archive_check (x int); "
                     "INSERT INTO ops_archive_check VALUES (1); DROP TABLE ops_archive_check'")
    run(lab, leader, f"{psql} 'SELECT pg_switch_wal()'")

    def archived() -> Any:
        archive = (backup_info(lab, first).get("archive") or [{}])[-1]
        top = archive.get("max") or ""
        return top if top[8:] >= wal[8:] else None

    top = wait_for(f"WAL {wal} in {first}'s repository", archived, timeout=120, every=2)
    print(f"with {victim_killed} dead, WAL up to {top} archived into {first}'s repository")


def test_status_ok_again_after_recovery(deployed: dict[str, Any], lab: Any, spec: ClusterSpec,
                                        spec_path: Path) -> None:
    """After the previous test's server came back: the alert resolves, status exits 0."""
    _, doc = wait_status_ok(spec_path, "status ok after recovery", timeout=300)
    assert all(s["up"] for s in doc["servers"])


def primary(lab: Any, spec: ClusterSpec) -> str:
    """The PostgreSQL member Patroni's cluster names leader."""
    name = leader(patroni_cluster(lab, spec))
    assert name, "no primary"
    return name


@pytest.fixture
def sample_table(lab: Any, spec: ClusterSpec) -> Iterator[int]:
    """A table with a known number of rows in the app database, dropped afterwards."""
    from freehold.deploy.ops.probes import parse_sections  # noqa: F401 - ops package importable

    leader = primary(lab, spec)
    psql = "cd / && runuser -u postgres -- psql -X -q -d freehold -v ON_ERROR_STOP=1 -c"
    run(lab, leader, f"{psql} 'DROP TABLE IF EXISTS ops_drill_check; CREATE TABLE "
                     "ops_drill_check AS SELECT g AS id FROM generate_series(1, 4321) g'")
    try:
        yield 4321
    finally:
        lab.run(leader, f"{psql} 'DROP TABLE IF EXISTS ops_drill_check'", timeout=60)


def test_restore_drill_passes(deployed: dict[str, Any], spec: ClusterSpec, spec_path: Path,
                              sample_table: int) -> None:
    code, doc, seconds = freehold(["backup", "restore-drill", str(spec_path), "--json"],
                                  timeout=1200)
    assert code == 0 and doc["ok"], (doc.get("error"), doc.get("mismatches"), doc)
    assert doc["drill_server"] == drill_host(spec).name
    row = next(t for t in doc["tables"] if t["table"] == "public.ops_drill_check")
    assert row["primary"] == row["restored"] == sample_table
    assert not doc["mismatches"]
    print(f"restore drill: {seconds:.1f} s, {len(doc['tables'])} tables, {doc['seconds']}")
