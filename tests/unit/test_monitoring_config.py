"""roles/monitoring and roles/backup config from the lab spec: scrape jobs over the mesh, alert
rules (promtool when installed here, else every expression parsed as PromQL), Alertmanager HA,
exporter ports in the firewall, pgBackRest topology and the role hooks."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import promql_parser
import pytest
import yaml
from cryptography.fernet import Fernet

from freehold.deploy.secrets import Secrets, SecretStore
from freehold.deploy.spec import ClusterSpec, SpecError, load_spec
from freehold.roles.backup import hosts as backup_hosts
from freehold.roles.backup.config import (
    ARCHIVE_COMMAND,
    RESTORE_COMMAND,
    RESTORE_SCRIPT,
    BackupConfigError,
    authorized_keys,
    dotted,
    drill_conf,
    drill_host,
    dynamic_archiving,
    first_backup_command,
    pgbackrest_conf,
    repo_host,
    repo_hosts,
    repo_index,
    restore_script_vars,
    ssh_keypair,
    timer_vars,
)
from freehold.roles.base.config import firewall_vars
from freehold.roles.common import render, template_path
from freehold.roles.monitoring import rules_text
from freehold.roles.monitoring.config import (
    alertmanager_args,
    alertmanager_config,
    exporters_on,
    prometheus_config,
    scrape_jobs,
)
from freehold.roles.registry import ROLE_ORDER, role_hosts

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_ALERTS = {"PostgresPrimaryLost", "ReplicationLag", "EtcdUnhealthy", "RedisClusterNotOk",
                   "AppErrorRate", "AppLatencyP99", "DiskFilling", "FanoutLag", "ServerDown",
                   "AppMetricUnreadable"}


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(ROOT / "inventories" / "lab.yaml")


@pytest.fixture(scope="module")
def secrets(spec: ClusterSpec, tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    store = SecretStore(tmp_path_factory.mktemp("s") / "lab.secrets", spec.name,
                        key=Fernet.generate_key())
    return store.ensure([s.name for s in spec.servers])


def _spec_with(spec: ClusterSpec, **changes: object) -> ClusterSpec:
    return spec.model_copy(update=changes)


# ---- Prometheus ---------------------------------------------------------------------------

def test_every_target_is_a_mesh_address_with_the_servers_name(spec: ClusterSpec) -> None:
    conf = prometheus_config(spec)
    mesh = {s.mesh_address: s for s in spec.servers}
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    for job in jobs.values():
        for sc in job["static_configs"]:
            (target,) = sc["targets"]
            addr, port = target.rsplit(":", 1)
            assert addr in mesh, (job["job_name"], target)
            assert sc["labels"]["instance"] == mesh[addr].name
            assert sc["labels"]["site"] == mesh[addr].site
    def servers(job: str) -> set[str]:
        return {sc["labels"]["instance"] for sc in jobs[job]["static_configs"]}

    assert servers("node") == {s.name for s in spec.servers}
    assert servers("postgres") == servers("patroni") == {"a1", "b1", "c1"}
    assert servers("redis") == {s.name for s in spec.servers_with_role("redis")}
    if "lb" in ROLE_ORDER:    # scraped once the kit deploys the role
        assert servers("haproxy") == {"a2", "a3", "b2", "b3"}
    if "app" in ROLE_ORDER:
        assert servers("app") == {"a3", "b3"}
    assert servers("etcd") == {"a1", "b1", "c1"}
    # both Prometheus servers alert through both Alertmanagers
    (am,) = conf["alerting"]["alertmanagers"]
    assert sorted(am["static_configs"][0]["targets"]) == sorted(
        f"{s.mesh_address}:9093" for s in spec.servers_with_role("monitoring"))
    assert conf["rule_files"] == ["/etc/prometheus/rules/freehold.yml"]


def test_a_role_nobody_carries_has_no_job(spec: ClusterSpec) -> None:
    servers = [s.model_copy(update={"roles": [r for r in s.roles if r not in ("lb", "app")]})
               for s in spec.servers]
    jobs = scrape_jobs(_spec_with(spec, servers=servers))
    assert "haproxy" not in jobs and "app" not in jobs and "node" in jobs


def test_alertmanagers_gossip_with_each_other(spec: ClusterSpec) -> None:
    a2, c2 = spec.server("a2"), spec.server("c2")
    args = alertmanager_args(spec, a2)
    assert f"--cluster.peer={c2.mesh_address}:9094" in args
    assert f"--cluster.peer={a2.mesh_address}" not in args
    assert f"--web.listen-address={a2.mesh_address}:9093" in args
    route = alertmanager_config(spec)["route"]
    assert route["receiver"] == "on-call" and "alertname" in route["group_by"]


def test_alertmanager_webhook_from_the_spec(spec: ClusterSpec) -> None:
    roles = {**spec.roles, "monitoring": {"webhook_url": "http://pager.example/hook"}}
    (recv,) = alertmanager_config(_spec_with(spec, roles=roles))["receivers"]
    assert recv["webhook_configs"][0]["url"] == "http://pager.example/hook"


# ---- alert rules --------------------------------------------------------------------------

def _rules(spec: ClusterSpec) -> list[dict]:
    doc = yaml.safe_load(rules_text(spec))
    return [r for g in doc["groups"] for r in g["rules"]]


def test_rules_cover_what_on_call_needs(spec: ClusterSpec) -> None:
    rules = _rules(spec)
    names = {r["alert"] for r in rules}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        assert r["for"].endswith(("s", "m")), r["alert"]


def test_every_rule_expression_is_valid_promql(spec: ClusterSpec, tmp_path: Path) -> None:
    """promtool when it is installed here; otherwise every expression through a PromQL
    parser (the lab test runs promtool on the monitoring servers)."""
    text = rules_text(spec)
    promtool = shutil.which("promtool")
    if promtool:
        path = tmp_path / "rules.yml"
        path.write_text(text)
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for r in _rules(spec):
        promql_parser.parse(r["expr"])  # raises ValueError on a syntax error


def test_a_broken_expression_is_caught() -> None:
    """The check above can fail: a missing parenthesis is refused."""
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(up[5m])")


def test_thresholds_come_from_the_spec(spec: ClusterSpec) -> None:
    roles = {**spec.roles, "monitoring": {"p99_seconds": 0.25, "error_ratio": 0.01}}
    rules = {r["alert"]: r for r in _rules(_spec_with(spec, roles=roles))}
    assert "> 0.25" in rules["AppLatencyP99"]["expr"]
    assert "> 0.01" in rules["AppErrorRate"]["expr"]


def test_scrape_interval_from_the_spec_and_bounded(spec: ClusterSpec, tmp_path: Path) -> None:
    assert prometheus_config(spec)["global"]["scrape_interval"] == "10s"
    roles = {**spec.roles, "monitoring": {"scrape_interval_s": 60}}
    assert prometheus_config(_spec_with(spec, roles=roles))["global"]["scrape_interval"] == "60s"
    doc = yaml.safe_load((ROOT / "inventories" / "lab.yaml").read_text())
    doc.setdefault("roles", {})["monitoring"] = {"scrape_interval_s": 600}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="scrape_interval_s") as bad:
        load_spec(path)
    assert "\n" not in str(bad.value).strip()
    # the 300-server lab scrapes every 60 s (its header says why)
    lab300 = (ROOT / "inventories" / "lab-300.yaml").read_text()
    assert "every 60 s here" in lab300
    assert prometheus_config(load_spec(ROOT / "inventories" / "lab-300.yaml"))["global"][
        "scrape_interval"] == "60s"


# ---- exporters and the firewall -----------------------------------------------------------

def test_exporters_on_the_servers_they_watch(spec: ClusterSpec) -> None:
    assert [p for p, _ in exporters_on(spec.server("a1"))] == [
        "prometheus-node-exporter", "prometheus-postgres-exporter", "prometheus-redis-exporter"]
    assert [p for p, _ in exporters_on(spec.server("a3"))] == ["prometheus-node-exporter"]
    assert role_hosts(spec, "monitoring") == [s.name for s in spec.servers]


def test_firewall_opens_exporter_ports_on_the_mesh_only(spec: ClusterSpec) -> None:
    def mesh_tcp(name: str) -> tuple[int, ...]:
        return firewall_vars(spec, spec.server(name))["ports"].mesh_tcp

    assert {9100, 9187, 9121} <= set(mesh_tcp("a1"))
    assert 9100 in mesh_tcp("a3") and 9187 not in mesh_tcp("a3")
    assert {9090, 9093, 9094} <= set(mesh_tcp("c2"))
    assert 9090 not in mesh_tcp("a1")
    for name in ("a1", "c2"):
        assert not {9100, 9090} & set(firewall_vars(spec, spec.server(name))["ports"].public_tcp)


def test_monitoring_and_backup_are_deployed_last(spec: ClusterSpec) -> None:
    assert ROLE_ORDER.index("monitoring") > ROLE_ORDER.index("redis")
    assert ROLE_ORDER.index("backup") > ROLE_ORDER.index("postgres")


# ---- backup -------------------------------------------------------------------------------

def test_repository_outside_the_primary_site_and_drill_elsewhere(spec: ClusterSpec) -> None:
    assert repo_host(spec).name == "b3"        # site b; the primary's site is a
    assert drill_host(spec).name == "c3"       # a third site: restore across the network
    assert backup_hosts(spec) == ["a1", "b1", "b3", "c1", "c3"]
    roles = {**spec.roles, "backup": {"repo_host": "c3"}}
    assert repo_host(_spec_with(spec, roles=roles)).name == "c3"
    roles = {**spec.roles, "backup": {"repo_host": "a1"}}
    with pytest.raises(BackupConfigError, match="not a backup server"):
        repo_host(_spec_with(spec, roles=roles))


def test_two_repositories_in_two_sites_unless_told_one(spec: ClusterSpec) -> None:
    assert [s.name for s in repo_hosts(spec)] == ["b3", "c3"]
    assert [repo_index(spec, spec.server(n)) for n in ("b3", "c3", "a1")] == [1, 2, None]
    one = _spec_with(spec, roles={**spec.roles, "backup": {"repositories": 1}})
    assert [s.name for s in repo_hosts(one)] == ["b3"]
    pg = pgbackrest_conf(one, one.server("a1"))
    assert pg is not None and "repo2" not in pg and pgbackrest_conf(one, one.server("c3")) is None
    # backup servers all in one site: a second repository there would not outlive the site
    same_site = _spec_with(spec, servers=[
        s.model_copy(update={"roles": [r for r in s.roles if r != "backup"]})
        if s.name == "c3" else s for s in spec.servers])
    assert [s.name for s in repo_hosts(same_site)] == ["b3"]


def test_the_two_repositories_back_up_at_different_times(spec: ClusterSpec) -> None:
    assert timer_vars(spec, 1)["full_at"] == "*-*-* 02:30:00"
    assert timer_vars(spec, 2)["full_at"] == "*-*-* 14:30:00"
    one, two = first_backup_command(1, "AS_PG"), first_backup_command(2, "AS_PG")
    assert "seq 1 20" in one and "sleep 15" in one and "sleep 25" in two  # bounded, apart
    assert "AS_PG pgbackrest --stanza=freehold --repo=1 --type=full backup && exit 0" in one
    assert "--repo=2 --type=full backup" in two


def test_pgbackrest_configs(spec: ClusterSpec) -> None:
    b3, c3 = spec.server("b3"), spec.server("c3")
    repo = pgbackrest_conf(spec, b3)
    assert repo is not None
    for i, name in enumerate(("a1", "b1", "c1"), start=1):
        assert f"pg{i}-host={spec.server(name).mesh_address}" in repo
    assert "repo1-path=/var/lib/pgbackrest" in repo and "repo1-retention-full=2" in repo
    pg = pgbackrest_conf(spec, spec.server("a1"))
    assert pg is not None and f"repo1-host={b3.mesh_address}" in pg and "pg1-host" not in pg
    # the second repository: c3 backs up into its own, every PostgreSQL server pushes to both
    assert f"repo2-host={c3.mesh_address}" in pg and "repo2-host-user=postgres" in pg
    assert "archive-async=y" in pg and "spool-path=/var/spool/pgbackrest" in pg
    second = pgbackrest_conf(spec, c3)
    # its repository under the index the PostgreSQL servers' archive-push asks for (--repo=2)
    assert second is not None and "repo2-path=/var/lib/pgbackrest" in second
    assert f"pg1-host={spec.server('a1').mesh_address}" in second and "repo1" not in second
    assert pgbackrest_conf(spec, spec.server("c2")) is None
    drill = drill_conf(spec, c3)
    assert drill is not None and f"repo1-host={b3.mesh_address}" in drill
    assert "pg1-path=/var/lib/freehold-drill/data" in drill
    assert drill_conf(spec, spec.server("a1")) is None
    assert ARCHIVE_COMMAND == "pgbackrest --stanza=freehold archive-push %p"


@pytest.mark.parametrize("shell", ["sh", "bash", "dash"])
def test_restore_command_asks_the_archive_for_timeline_histories_only(
        tmp_path: Path, shell: str) -> None:
    """PostgreSQL runs restore_command through a shell with %f and %p replaced, in the data
    directory: a history file in pg_wal is copied, one missing is asked of both repositories
    at once (the first repository's copy wins), a WAL segment is refused at once."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    spec = load_spec(ROOT / "inventories" / "lab.yaml")
    script = tmp_path / "freehold-restore-history"
    script.write_text(render(template_path(str(ROOT / "roles" / "backup" / "__init__.py"),
                                           "restore-history.sh.j2"),
                             **restore_script_vars(spec)))
    fake = tmp_path / "bin" / "pgbackrest"
    fake.parent.mkdir()
    log = tmp_path / "calls"
    # repo 1 has timeline 7's history, repo 2 timelines 7 (another copy) and 9; each answer
    # takes 0.5 s, as an ask over SSH does
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\nsleep 0.5\n"
                    'case "$3 $5" in\n'
                    '  "--repo=1 00000007.history") echo 7-repo1 > "$6"; exit 0 ;;\n'
                    '  "--repo=2 00000007.history") echo 7-repo2 > "$6"; exit 0 ;;\n'
                    '  "--repo=2 00000009.history") echo 9 > "$6"; exit 0 ;;\n'
                    "esac\nexit 1\n")
    fake.chmod(0o755)
    data = tmp_path / "data"
    (data / "pg_wal").mkdir(parents=True)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}

    def restore(name: str) -> tuple[int, float]:
        cmd = RESTORE_COMMAND.replace(RESTORE_SCRIPT, f"{shell} {script}")
        cmd = cmd.replace("%f", name).replace("%p", "pg_wal/RECOVERYHISTORY")
        start = time.monotonic()
        rc = subprocess.run([shell, "-c", cmd], cwd=data, env=env, timeout=20).returncode
        return rc, time.monotonic() - start

    got = data / "pg_wal/RECOVERYHISTORY"
    assert restore("00000007.history")[0] == 0 and got.read_text() == "7-repo1\n"
    assert restore("00000009.history")[0] == 0 and got.read_text() == "9\n"
    got.unlink()
    rc, took = restore("0000000A.history")  # not in the archive: a fresh timeline id
    assert rc == 1 and not got.exists()
    assert took < 0.95, f"the two repositories were asked one after the other ({took:.2f} s)"
    calls = log.read_text().splitlines()
    assert len(calls) == 6 and all("--no-archive-async" in c and "archive-get" in c
                                   for c in calls)
    # a history the member has is copied from pg_wal, the archive not asked
    (data / "pg_wal/00000006.history").write_text("1\t0/3000000\tno recovery target\n")
    assert restore("00000006.history")[0] == 0
    assert got.read_text().startswith("1\t0/3000000")
    for segment in ("000000070000000000000012", "000000070000000000000012.partial",
                    "../00000007.history"):
        assert restore(segment)[0] == 1
    assert len(log.read_text().splitlines()) == 6
    assert not list(tmp_path.glob("freehold-restore.*")), "a scratch folder was left behind"


def test_standbys_restore_from_the_archive_through_patronis_dynamic_config() -> None:
    """A promoted standby must see every timeline history in the archive (Patroni #890):
    restore_command goes in recovery_conf, which Patroni copies from the DCS to every member."""
    wanted = dynamic_archiving()
    assert wanted == {"postgresql.parameters.archive_command": ARCHIVE_COMMAND,
                      "postgresql.recovery_conf.restore_command": RESTORE_COMMAND}
    # `patronictl edit-config -s key=value` reads each value as YAML: both stay strings
    assert all(yaml.safe_load(v) == v for v in wanted.values())
    doc = {"ttl": 10, "postgresql": {"parameters": {"archive_command": ARCHIVE_COMMAND},
                                     "use_slots": True}}
    assert dotted(doc, "postgresql.parameters.archive_command") == ARCHIVE_COMMAND
    assert dotted(doc, "postgresql.recovery_conf.restore_command") is None
    assert dotted(doc, "ttl.anything") is None
    assert [k for k, v in wanted.items() if dotted(doc, k) != v] == \
        ["postgresql.recovery_conf.restore_command"]


def test_backup_key_is_stable_and_mesh_only(spec: ClusterSpec, secrets: Secrets) -> None:
    priv1, pub1 = ssh_keypair(secrets["backup_ssh"])
    priv2, pub2 = ssh_keypair(secrets["backup_ssh"])
    assert pub1 == pub2 and pub1.startswith("ssh-ed25519 ")
    assert priv1.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert ssh_keypair("another seed")[1] != pub1
    line = authorized_keys(spec, pub1).splitlines()[-1]
    assert line.startswith(f'restrict,from="{spec.mesh.network}" ssh-ed25519 ')


def test_backup_templates_render(spec: ClusterSpec) -> None:
    from freehold.roles.backup.config import timer_vars

    timer = render(template_path(str(ROOT / "roles/backup/__init__.py"),
                                 "backup-full.timer.j2"), **timer_vars(spec))
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer
    unit = render(template_path(str(ROOT / "roles/backup/__init__.py"),
                                "backup-full.service.j2"), **timer_vars(spec))
    assert "User=postgres" in unit and "--type=full backup" in unit
