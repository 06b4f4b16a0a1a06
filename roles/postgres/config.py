"""Pure config for PostgreSQL 15 under Patroni 3: the Patroni YAML, tuning from RAM and cores."""

from __future__ import annotations

from typing import Any

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import postgres_primary_site
from freehold.roles.etcd.config import CLIENT_PORT as ETCD_PORT
from freehold.roles.etcd.config import members as etcd_members
from freehold.roles.ports import PATRONI_REST_PORT as REST_PORT
from freehold.roles.ports import PG_PORT

DATA_DIR = "/var/lib/postgresql/15/freehold"
BIN_DIR = "/usr/lib/postgresql/15/bin"
CONFIG = "/etc/patroni/config.yml"
PATRONICTL = f"cd / && runuser -u postgres -- patronictl -c {CONFIG}"
APP_DATABASE = "freehold"
APP_USER = "freehold"
EXTENSIONS = ("pg_trgm", "citext", "pg_stat_statements")
# Patroni's failure detection (issue 21: writes back within 15 s of the leader's power loss).
# A dead leader's key expires `ttl` after its last update, which came at most `loop_wait`
# before the loss: the standby (watching the key in etcd) stands for leader 9-10 s after it.
# Before promoting it asks every member it knew, the dead leader too, whether the primary
# lives (Patroni's own 2 s timeout, not a setting), then promotes. Patroni requires
# loop_wait + 2 x retry_timeout <= ttl. A 2 s network blip stays inside retry_timeout: no
# failover (the `blip` drill).
# With failsafe_mode a leader cut off from etcd does not demote after retry_timeout alone: it
# first POSTs /failsafe to every member (Patroni: 2 s timeout, 1 retry: up to ~4 s when they
# cannot be reached, as in a partition). So it demotes up to loop_wait + retry_timeout + 4 s
# after the cut, and that must come before its key can expire (FAILSAFE_ASK_S, a unit test).
# ttl 8 with loop_wait 1 broke this (1 + 3 + 4 = 8): the CI lab test's site-partition saw two
# writable primaries and lost acknowledged writes. 10/1/3 leaves 2 s (4 s with the other
# side's ask of the old leader). Measured on the lab at 10/2/3: the key expired 9.9 s after
# the power loss, writes came back at 18 s (the rest: the 2 s ask, a 4.8 s promotion spent
# in restore_command's history probes over SSH, since cut to 0.7-1.6 s, see roles.backup).
TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 1, 3
FAILSAFE_ASK_S = 2 * 2  # Patroni 3.0's POST /failsafe: timeout=2, retries=1
# A hardware watchdog fires `ttl - safety_margin` after the leader's last loop: 5 s, before its
# key can expire (10 s), so a hung leader is reset before a standby may promote; 5 s also
# outlasts a loop blocked for retry_timeout (3 s) on a slow etcd, which must not reset it.
WATCHDOG_SAFETY_MARGIN = 5
MAX_LAG_ON_FAILOVER = 1024 * 1024  # bytes


def dynamic_settings() -> dict[str, int | bool]:
    """The DCS settings deploys keep (bootstrap.dcs applies only when a cluster is created: a
    running cluster gets them through `patronictl edit-config`, see roles.postgres)."""
    return {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
            "maximum_lag_on_failover": MAX_LAG_ON_FAILOVER,
            # etcd without quorum must not stop writes (the `etcd-quorum-loss` drill: 66 s of
            # failed writes without it, the whole time etcd was down): Patroni 3's failsafe
            # mode keeps the leader primary while it cannot update its key as long as every
            # member it knew answers its POST /failsafe; a member that does not demotes it as
            # before. A replica never promotes without etcd, so no split brain either way.
            "failsafe_mode": True,
            # 2 only for the moment of a switch back (drills.runner.switch_back): a deploy
            # puts back what an interrupted one left
            "synchronous_node_count": 1}


def members(spec: ClusterSpec) -> list[Server]:
    return spec.servers_with_role("postgres")


def primary_site_member(spec: ClusterSpec) -> str | None:
    """The member the leader belongs on: the first in roles.postgres.primary_site. It starts
    first in a new cluster, and `freehold failover --back` moves the leader to it."""
    site = postgres_primary_site(spec)
    return next((s.name for s in members(spec) if s.site == site), None)


def _mb(value_mb: float) -> str:
    return f"{max(1, int(value_mb))}MB"


def tuning(ram_gib: float, cores: int, disk_gib: float,
           max_connections: int = 200) -> dict[str, Any]:
    """Memory, parallelism and WAL settings sized from one server's RAM, cores and disk."""
    ram_mb = ram_gib * 1024
    shared = max(128.0, ram_mb * 0.25)
    return {
        "shared_buffers": _mb(shared),
        "effective_cache_size": _mb(max(256.0, ram_mb * 0.75)),
        "maintenance_work_mem": _mb(min(2048.0, max(64.0, ram_mb * 0.05))),
        "work_mem": _mb(max(4.0, ram_mb * 0.25 / max_connections)),
        "wal_buffers": "16MB",
        "max_parallel_workers": max(2, cores),
        "max_parallel_workers_per_gather": max(1, cores // 2),
        "max_parallel_maintenance_workers": max(1, cores // 2),
        "min_wal_size": _mb(min(1024.0, disk_gib * 1024 * 0.02)),
        "max_wal_size": _mb(min(16384.0, max(1024.0, disk_gib * 1024 * 0.05))),
        "checkpoint_completion_target": 0.9,
        "random_page_cost": 1.1,
        "effective_io_concurrency": 200,
    }


def cluster_parameters(spec: ClusterSpec) -> dict[str, Any]:
    """Parameters Patroni keeps equal on every member (written to the DCS at bootstrap)."""
    settings = spec.role_settings("postgres")
    cores = min((m.cores for m in members(spec)), default=2)
    return {
        "max_connections": int(settings.get("max_connections", 200)),
        "max_worker_processes": max(8, cores * 2),
        "max_wal_senders": 10,
        "max_replication_slots": 10,
        "wal_level": "replica",
        "wal_log_hints": "on",
        "hot_standby": "on",
        "wal_keep_size": "256MB",
        "archive_mode": "on",
        "archive_command": str(settings.get("archive_command", "/bin/true")),
        "archive_timeout": int(settings.get("archive_timeout", 60)),
        "synchronous_commit": "on",
        "shared_preload_libraries": "pg_stat_statements",
        "password_encryption": "scram-sha-256",
    }


def nosync(spec: ClusterSpec, me: Server) -> bool:
    """Members in the primary's site besides its first one never become the synchronous
    standby: the standby that must hold every acknowledged commit is in another site."""
    site = postgres_primary_site(spec)
    same = [m for m in members(spec) if m.site == site]
    return me.site == site and bool(same) and me.name != same[0].name


def patroni_config(spec: ClusterSpec, me: Server, secrets: Secrets) -> dict[str, Any]:
    mesh_net = str(spec.mesh.network)
    params = tuning(me.ram_gib, me.cores, me.disk_gib,
                    int(spec.role_settings("postgres").get("max_connections", 200)))
    params.update({
        "unix_socket_directories": "/var/run/postgresql",
        "log_min_duration_statement": 1000,
        "log_checkpoints": "on",
        "log_lock_waits": "on",
        # a synchronous standby that lost power holds every commit until its walsender gives
        # up: 60 s by default. Patroni picks another standby only once pg_stat_replication no
        # longer shows it streaming (the `sync-standby-kill` drill). The standby answers the
        # walsender's keepalives within half of this, even across a slow link.
        "wal_sender_timeout": "10s",
    })
    return {
        "scope": spec.name,
        "namespace": "/freehold/",
        "name": me.name,
        "restapi": {
            "listen": f"{me.mesh_address}:{REST_PORT}",
            "connect_address": f"{me.mesh_address}:{REST_PORT}",
            "authentication": {"username": "patroni", "password": secrets["patroni_rest"]},
        },
        "etcd3": {"hosts": [f"{m.mesh_address}:{ETCD_PORT}" for m in etcd_members(spec)]},
        "bootstrap": {
            "dcs": {
                **dynamic_settings(),
                "synchronous_mode": True,
                "synchronous_mode_strict": False,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": cluster_parameters(spec),
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
        },
        "postgresql": {
            "listen": f"{me.mesh_address},127.0.0.1:{PG_PORT}",
            "connect_address": f"{me.mesh_address}:{PG_PORT}",
            "data_dir": DATA_DIR,
            "bin_dir": BIN_DIR,
            "pgpass": "/var/lib/postgresql/.pgpass_patroni",
            "use_unix_socket": True,
            "authentication": {
                "superuser": {"username": "postgres", "password": secrets["postgres_superuser"]},
                "replication": {"username": "replicator",
                                "password": secrets["postgres_replication"]},
                "rewind": {"username": "rewind", "password": secrets["postgres_rewind"]},
            },
            "parameters": params,
            "pg_hba": [
                "local all all peer",
                "host all all 127.0.0.1/32 scram-sha-256",
                # Patroni checks its own timeline over a local replication connection (rewind)
                "host replication replicator 127.0.0.1/32 scram-sha-256",
                "host replication replicator ::1/128 scram-sha-256",
                f"host replication replicator {mesh_net} scram-sha-256",
                f"host all all {mesh_net} scram-sha-256",
            ],
        },
        "watchdog": {"mode": "automatic", "device": "/dev/watchdog",
                     "safety_margin": WATCHDOG_SAFETY_MARGIN},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                 "nosync": nosync(spec, me)},
    }


# The roles Patroni creates at bootstrap from its `authentication` section (patroni_config),
# with the secret each one's password comes from. Patroni never changes a password of a
# running cluster: a rotated secret reaches its config on every member, so the role's password
# must follow, or pg_rewind ("password authentication failed for user rewind") and a replica's
# next replication connection fail. The superuser is `postgres`: its password is checked on
# TCP connections only (the local socket is peer). roles.postgres sets them on the leader
# before any member's config names the new secret (a replica reconnecting finds it set).
PATRONI_ROLES = (("postgres", "postgres_superuser"), ("replicator", "postgres_replication"),
                 ("rewind", "postgres_rewind"))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def roles_sql(secrets: Secrets) -> str:
    """SQL for the running leader: each of Patroni's roles (PATRONI_ROLES) that exists gets its
    secret as password. The statements are not logged (log_statement off for the session)."""
    alters = "\n".join(
        f"SELECT format('ALTER ROLE %I WITH PASSWORD %L', '{role}', {_literal(secrets[key])})\n"
        f" WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}')\\gexec"
        for role, key in PATRONI_ROLES)
    return f"""-- Managed by freehold (roles/postgres): the passwords of Patroni's roles.
\\set ON_ERROR_STOP on
SET log_statement = 'none';
SET log_min_duration_statement = -1;
{alters}
"""


def app_sql(secrets: Secrets) -> str:
    """Idempotent SQL run on the primary: the app's user, database and extensions."""
    ext = "\n".join(f"CREATE EXTENSION IF NOT EXISTS {e};" for e in EXTENSIONS)
    return f"""-- Managed by freehold (roles/postgres): the app's role, database and extensions.
\\set ON_ERROR_STOP on
SELECT 'CREATE ROLE {APP_USER} LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_USER}')\\gexec
ALTER ROLE {APP_USER} WITH LOGIN PASSWORD {_literal(secrets['postgres_app'])};
SELECT 'CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{APP_DATABASE}')\\gexec
\\connect {APP_DATABASE}
{ext}
GRANT ALL ON SCHEMA public TO {APP_USER};
"""
