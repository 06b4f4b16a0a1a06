"""Pure config for the database routing: HAProxy follows Patroni's REST checks, pgbouncer pools
in front of it. Clients use `<pgbouncer server mesh address>:6432`, database `freehold` (the
primary) or `freehold_ro` (a replica); no client needs to know which server is primary."""

from __future__ import annotations

from typing import Any

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.ports import PG_PRIMARY_PORT as PRIMARY_PORT
from freehold.roles.ports import PG_REPLICA_PORT as REPLICA_PORT
from freehold.roles.ports import PGBOUNCER_PORT
from freehold.roles.ports import PGROUTER_STATS_PORT as STATS_PORT
from freehold.roles.postgres.config import APP_DATABASE, APP_USER, PG_PORT, REST_PORT
from freehold.roles.postgres.config import members as pg_members

REPLICA_MAX_LAG = "16MB"


def haproxy_vars(spec: ClusterSpec, me: Server) -> dict[str, Any]:
    settings = spec.role_settings("pgbouncer")
    return {
        "server": me,
        "binds": [me.mesh_address, "127.0.0.1"],
        "primary_port": PRIMARY_PORT,
        "replica_port": REPLICA_PORT,
        "stats_port": STATS_PORT,
        "max_lag": str(settings.get("replica_max_lag", REPLICA_MAX_LAG)),
        "members": [{"name": m.name, "address": m.mesh_address} for m in pg_members(spec)],
        "pg_port": PG_PORT,
        "rest_port": REST_PORT,
        "maxconn": int(settings.get("haproxy_maxconn", 4000)),
    }


def pgbouncer_vars(spec: ClusterSpec, me: Server) -> dict[str, Any]:
    settings = spec.role_settings("pgbouncer")
    return {
        "server": me,
        "listen": f"{me.mesh_address},127.0.0.1",
        "port": PGBOUNCER_PORT,
        "database": APP_DATABASE,
        "primary_port": PRIMARY_PORT,
        "replica_port": REPLICA_PORT,
        "pool_mode": str(settings.get("pool_mode", "transaction")),
        "max_client_conn": int(settings.get("max_client_conn", 5000)),
        "default_pool_size": int(settings.get("default_pool_size", max(10, me.cores * 10))),
        "admin_user": APP_USER,
    }


def userlist(secrets: Secrets) -> str:
    return f'"{APP_USER}" "{secrets["postgres_app"]}"\n'
