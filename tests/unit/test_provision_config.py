"""Config generated from the lab spec: etcd, Patroni, routing, Redis, mesh, firewall, SeaweedFS."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from freehold.deploy.secrets import Secrets, SecretStore
from freehold.deploy.spec import ClusterSpec, load_spec, loads_spec
from freehold.deploy.spec.errors import SpecError
from freehold.deploy.spec.placement import redis_layout
from freehold.roles.base.config import firewall_vars, host_ports, sysctl_values
from freehold.roles.common import render, template_path
from freehold.roles.etcd.config import etcd_env, timeouts
from freehold.roles.media.config import commands, replication, s3_config
from freehold.roles.mesh.config import wireguard_vars
from freehold.roles.pgbouncer.config import haproxy_vars, pgbouncer_vars, userlist
from freehold.roles.postgres.config import (
    PATRONI_ROLES,
    app_sql,
    nosync,
    patroni_config,
    roles_sql,
    tuning,
)
from freehold.roles.redis.config import layout_doc, redis_vars

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(ROOT / "inventories" / "lab.yaml")


@pytest.fixture(scope="module")
def secrets(spec: ClusterSpec, tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    store = SecretStore(tmp_path_factory.mktemp("s") / "lab.secrets", spec.name,
                        key=Fernet.generate_key())
    return store.ensure([s.name for s in spec.servers])


def t(role: str, name: str) -> Path:
    return template_path(str(ROLES / role / "__init__.py"), name)


def test_etcd_timeouts_follow_latency(spec: ClusterSpec) -> None:
    assert timeouts(spec) == (100, 1000)  # lab RTT ≤ 25 ms: etcd's floor values
    far = spec.model_copy(deep=True)
    far.sites[0].latency_ms["c"] = 180.0
    heartbeat, election = timeouts(far)
    assert heartbeat >= 180 * 1.5 and election == heartbeat * 10


def test_etcd_env(spec: ClusterSpec) -> None:
    members = spec.servers_with_role("etcd")
    env = etcd_env(spec, members[0])
    assert env["ETCD_INITIAL_CLUSTER"].count("=http://") == len(members) == 3
    for m in members:
        assert f"{m.name}=http://{m.mesh_address}:2380" in env["ETCD_INITIAL_CLUSTER"]
    assert env["ETCD_LISTEN_PEER_URLS"] == f"http://{members[0].mesh_address}:2380"
    text = render(t("etcd", "etcd.env.j2"), server=members[0], env=env)
    assert 'ETCD_HEARTBEAT_INTERVAL="100"' in text
    assert 'ETCD_PRE_VOTE="true"' in text  # a returning member does not depose the leader


def test_patroni_config(spec: ClusterSpec, secrets: Secrets) -> None:
    pg = spec.servers_with_role("postgres")
    conf = patroni_config(spec, pg[0], secrets)
    dcs = conf["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["maximum_lag_on_failover"] > 0
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"] <= 30
    assert dcs["postgresql"]["parameters"]["archive_timeout"] == 60
    assert conf["watchdog"]["mode"] == "automatic"
    etcd = {f"{m.mesh_address}:2379" for m in spec.servers_with_role("etcd")}
    assert set(conf["etcd3"]["hosts"]) == etcd
    assert conf["postgresql"]["connect_address"] == f"{pg[0].mesh_address}:5432"
    assert conf["restapi"]["listen"].startswith(pg[0].mesh_address)
    assert conf["postgresql"]["authentication"]["replication"]["password"] == \
        secrets["postgres_replication"]
    mesh = str(spec.mesh.network)
    assert f"host replication replicator {mesh} scram-sha-256" in conf["postgresql"]["pg_hba"]
    # the YAML Patroni reads round-trips
    assert yaml.safe_load(yaml.safe_dump(conf)) == conf


def test_tuning_from_ram_and_cores() -> None:
    small, big = tuning(1, 1, 10), tuning(64, 16, 1000)
    assert small["shared_buffers"] == "256MB" and big["shared_buffers"] == "16384MB"
    assert big["effective_cache_size"] == "49152MB"
    assert big["max_parallel_workers"] == 16
    assert int(big["maintenance_work_mem"][:-2]) <= 2048


def test_synchronous_standby_never_in_the_primarys_site() -> None:
    spec = loads_spec("""
name: two
providers: [{name: p, kind: owned}]
sites: [{name: a, provider: p}, {name: b, provider: p}, {name: c, provider: p}]
roles: {postgres: {primary_site: a}}
servers:
  - {name: a1, site: a, address: 10.0.0.1, roles: [postgres, etcd]}
  - {name: a2, site: a, address: 10.0.0.2, roles: [postgres]}
  - {name: b1, site: b, address: 10.0.1.1, roles: [postgres, etcd]}
  - {name: c1, site: c, address: 10.0.2.1, roles: [etcd]}
""")
    assert [nosync(spec, s) for s in spec.servers_with_role("postgres")] == [False, True, False]


def test_app_sql_is_idempotent_and_quotes(secrets: Secrets) -> None:
    sql = app_sql(secrets)
    assert "WHERE NOT EXISTS (SELECT 1 FROM pg_roles" in sql
    assert "CREATE EXTENSION IF NOT EXISTS pg_trgm" in sql
    odd = Secrets(cluster={**secrets.cluster, "postgres_app": "it's"})
    assert "PASSWORD 'it''s'" in app_sql(odd)


def test_roles_sql_follows_every_patroni_secret(spec: ClusterSpec, secrets: Secrets) -> None:
    """Each role Patroni's config authenticates as gets the same secret from roles_sql, quoted."""
    me = spec.servers_with_role("postgres")[0]
    auth = patroni_config(spec, me, secrets)["postgresql"]["authentication"]
    named = {v["username"]: v["password"] for v in auth.values()}
    assert {role for role, _ in PATRONI_ROLES} == set(named)
    odd = Secrets(cluster={**secrets.cluster, "postgres_rewind": "a'b"})
    sql = roles_sql(odd)
    assert "'rewind', 'a''b')" in sql
    for role, key in PATRONI_ROLES:
        assert f"'{role}', '{secrets[key]}')" in roles_sql(secrets)
        assert named[role] == secrets[key]
    assert "SET log_statement = 'none'" in sql and "ON_ERROR_STOP on" in sql


def test_role_passwords_run_before_patroni_config() -> None:
    from freehold.roles.postgres import ROLE, configure, role_passwords
    assert ROLE.steps.index(role_passwords) < ROLE.steps.index(configure)


def test_routing_follows_patroni(spec: ClusterSpec, secrets: Secrets) -> None:
    me = spec.servers_with_role("pgbouncer")[0]
    cfg = render(t("pgbouncer", "pgrouter.cfg.j2"), **haproxy_vars(spec, me))
    assert "uri /primary" in cfg and "uri /replica?lag=16MB" in cfg
    for m in spec.servers_with_role("postgres"):
        assert f"server {m.name} {m.mesh_address}:5432 check port 8008" in cfg
    assert "on-marked-down shutdown-sessions" in cfg
    # no fresh replica: reads go to the local primary listener (a backup server, last)
    replicas = cfg[cfg.index("listen replicas"):]
    assert replicas.rstrip().endswith("server primary-fallback 127.0.0.1:5000 backup")
    ini = render(t("pgbouncer", "pgbouncer.ini.j2"), **pgbouncer_vars(spec, me))
    assert "freehold = host=127.0.0.1 port=5000" in ini
    assert "freehold_ro = host=127.0.0.1 port=5001" in ini
    assert f"listen_addr = {me.mesh_address},127.0.0.1" in ini
    assert secrets["postgres_app"] in userlist(secrets)


def test_redis_layout_and_config(spec: ClusterSpec) -> None:
    doc = layout_doc(spec)
    assert len(doc["shards"]) == 3
    sites = {s.mesh_address: s.site for s in spec.servers}
    for shard in doc["shards"]:
        assert shard["replicas"], shard
        for r in shard["replicas"]:
            assert sites[r["address"]] != sites[shard["master"]["address"]]
    json.dumps(doc)
    node = redis_layout(spec)[0].master
    conf = render(t("redis", "redis.conf.j2"), **redis_vars(spec, node))
    assert "cluster-enabled yes" in conf
    assert f"cluster-announce-ip {node.mesh_address}" in conf
    assert f"bind {node.mesh_address} 127.0.0.1" in conf
    assert "maxmemory-policy volatile-lru" in conf and "appendonly yes" in conf
    auth = render(t("redis", "auth.conf.j2"), password="pw")
    assert "requirepass pw" in auth and "masterauth pw" in auth


def test_wireguard_full_mesh(spec: ClusterSpec, secrets: Secrets) -> None:
    for me in spec.servers:
        text = render(t("mesh", "wg0.conf.j2"), **wireguard_vars(spec, me, secrets))
        assert text.count("[Peer]") == len(spec.servers) - 1
        assert f"PrivateKey = {secrets.wireguard_private(me.name)}" in text
        assert secrets.wireguard_public(me.name) not in text  # its own key is no peer
        net = spec.mesh.network
        assert f"Address = {me.mesh_address}/{net.prefixlen}" in text
        # that network's one connected route reaches every peer: no route per peer
        assert "\nTable = off\n" in text
        assert ipaddress.IPv4Address(me.mesh_address) in net
        # no keepalives by default: a full mesh of N would send N*(N-1)/interval packets a
        # second (at 300 servers the lab's userspace WireGuard saturated the machine)
        assert "PersistentKeepalive" not in text and "\n\n\n" not in text


def test_wireguard_keepalive_when_the_spec_asks(tmp_path: Path, secrets: Secrets) -> None:
    doc = yaml.safe_load((ROOT / "inventories" / "lab.yaml").read_text())
    doc["mesh"]["keepalive"] = 25
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = load_spec(path)
    me = spec.servers[0]
    text = render(t("mesh", "wg0.conf.j2"), **wireguard_vars(spec, me, secrets))
    assert text.count("PersistentKeepalive = 25") == len(spec.servers) - 1
    doc["mesh"]["keepalive"] = -1
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="keepalive"):
        load_spec(path)


def test_firewall_opens_role_ports_only_on_the_mesh(spec: ClusterSpec) -> None:
    a1 = spec.server("a1")
    text = render(t("base", "nftables.conf.j2"), **firewall_vars(spec, a1))
    assert "policy drop" in text
    mesh_line = next(line for line in text.splitlines() if 'iifname "wg0"' in line
                     and "tcp dport" in line)
    for port in (2379, 2380, 5432, 8008, 6379, 16379, 9333, 8333):
        assert str(port) in mesh_line
    public_line = next(line for line in text.splitlines() if line.strip().startswith("tcp dport"))
    assert public_line.split("{")[1].split("}")[0].strip() == "22"
    assert host_ports(["base", "mesh", "lb"]).public_tcp == (22, 80, 443)


def test_sysctl_for_redis_hosts(spec: ClusterSpec) -> None:
    assert sysctl_values(spec.server("a1"))["vm.overcommit_memory"] == "1"
    assert "vm.overcommit_memory" not in sysctl_values(spec.server("a3"))


def test_seaweedfs_commands(spec: ClusterSpec, secrets: Secrets) -> None:
    assert replication(spec) == "100"  # one extra copy in another site
    a1 = spec.server("a1")
    cmds = commands(spec, a1)
    assert set(cmds) == {"master", "volume", "filer"}
    assert "-dataCenter=a" in cmds["volume"] and "-defaultReplicaPlacement=100" in cmds["filer"]
    peers = cmds["master"].split("-peers=")[1].split()[0].split(",")
    assert len(peers) == 3
    assert json.loads(s3_config(secrets))["identities"][0]["credentials"][0]["accessKey"] == \
        secrets["s3_access_key"]


@pytest.mark.parametrize("role", ["base", "mesh", "etcd", "postgres", "pgbouncer", "redis",
                                  "media"])
def test_every_template_renders_for_every_lab_server(role: str, spec: ClusterSpec,
                                                     secrets: Secrets) -> None:
    """StrictUndefined: a variable a template needs but is not given fails here."""
    from freehold.roles.media.config import unit_vars

    for me in spec.servers:
        if role not in me.roles:
            continue
        data = {
            "base": lambda me=me: {**firewall_vars(spec, me), "values": sysctl_values(me)},
            "mesh": lambda me=me: wireguard_vars(spec, me, secrets),
            "etcd": lambda me=me: {"server": me, "env": etcd_env(spec, me)},
            "postgres": lambda me=me: {},
            "pgbouncer": lambda me=me: {**haproxy_vars(spec, me), **pgbouncer_vars(spec, me)},
            "redis": lambda me=me: {**redis_vars(spec, me), "password": "x"},
            "media": lambda me=me: unit_vars("volume", commands(spec, me)["volume"], me),
        }[role]()
        for path in sorted((ROLES / role / "templates").glob("*.j2")):
            assert render(path, **data).strip(), path
