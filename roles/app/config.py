"""Pure config for the app servers and workers: paths, the environment file from the spec and
the secrets, the unit settings. Settings under `roles.app` in the spec:

    port: 8000              # the app's port on the mesh address (HAProxy checks /healthz there)
    workers: <cores>        # uvicorn worker processes (default: one per core)
    keep_releases: 3        # releases kept side by side on each server
    db_pool_max: 10         # asyncpg pool size per process
    env: {NAME: value}      # extra FREEHOLD_* settings (app/settings.py), prefix optional,
                            # e.g. the sign-up limits and proof of work (RL_SIGNUP_PER_IP,
                            # SIGNUP_POW_*: docs/signup-limits.md); one line each; none of
                            # the settings the kit sets itself
                            # (deploy.spec.role_settings.APP_PLATFORM_ENV)

The app reaches PostgreSQL through the HAProxy routers of the pgbouncer servers (primary on
5000, fresh replicas on 5001: they follow Patroni, so no client knows which server is primary).
It does not go through pgbouncer itself: pgbouncer pools in transaction mode, where asyncpg's
named prepared statements break; the app keeps its own pools. Redis is the cluster (any node is
a seed), S3 the media servers' gateways. Servers of the app's own site come first in each list.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from freehold.app.settings import SettingsError, check_env
from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.role_settings import APP_PLATFORM_ENV, app_env_name
from freehold.roles.common.envfile import environment_file
from freehold.roles.media.config import bucket
from freehold.roles.ports import APP_PORT, REDIS_PORT
from freehold.roles.ports import LB_RUNTIME_PORT as RUNTIME_PORT
from freehold.roles.ports import MEDIA_S3_PORT as S3_PORT
from freehold.roles.ports import PG_PRIMARY_PORT as PRIMARY_PORT
from freehold.roles.ports import PG_REPLICA_PORT as REPLICA_PORT
from freehold.roles.postgres.config import APP_DATABASE, APP_USER

ROOT = "/opt/freehold"
RELEASES = f"{ROOT}/releases"
WHEELS = f"{ROOT}/wheels"
CURRENT = f"{ROOT}/current"
HELPER = "/usr/local/sbin/freehold-release"
ENV_FILE = "/etc/freehold/app.env"
USER = "freehold"
HOME = "/var/lib/freehold"
APP_UNIT = "freehold-app"
MIGRATE_UNIT = "freehold-migrate"
RUNNING_RE = re.compile(r"/opt/freehold/releases/([^/\s]+)/venv/")


def settings(spec: ClusterSpec) -> dict[str, Any]:
    return spec.role_settings("app")


def app_port(spec: ClusterSpec) -> int:
    return int(settings(spec).get("port", APP_PORT))


def keep_releases(spec: ClusterSpec) -> int:
    return max(2, int(settings(spec).get("keep_releases", 3)))


def web_workers(spec: ClusterSpec, me: Server) -> int:
    return max(1, int(settings(spec).get("workers", me.cores)))


def near_first(spec: ClusterSpec, me: Server, role: str) -> list[Server]:
    """Servers with `role`, those of `me`'s site first (spec order otherwise)."""
    servers = spec.servers_with_role(role)
    return sorted(servers, key=lambda s: s.site != me.site)


def _hosts(servers: list[Server], port: int) -> str:
    return ",".join(f"{s.mesh_address}:{port}" for s in servers)


def database_urls(spec: ClusterSpec, secrets: Secrets, me: Server) -> tuple[str, str, str]:
    """(write DSN, read DSN, single-host DSN for migrations) through the Patroni routers."""
    routers = near_first(spec, me, "pgbouncer")
    if not routers:
        raise ValueError(f"{spec.path}: no server has the pgbouncer role — the app needs "
                         "one to reach PostgreSQL")
    user = f"{APP_USER}:{quote(secrets['postgres_app'], safe='')}"
    write = f"postgresql://{user}@{_hosts(routers, PRIMARY_PORT)}/{APP_DATABASE}"
    read = f"postgresql://{user}@{_hosts(routers, REPLICA_PORT)}/{APP_DATABASE}"
    single = f"postgresql://{user}@{routers[0].mesh_address}:{PRIMARY_PORT}/{APP_DATABASE}"
    return write, read, single


def app_env(spec: ClusterSpec, secrets: Secrets, me: Server) -> dict[str, str]:
    """The FREEHOLD_* environment of the app and the workers on `me`."""
    write, read, single = database_urls(spec, secrets, me)
    env = {
        "FREEHOLD_DATABASE_URL": write,
        "FREEHOLD_DATABASE_READ_URL": read,
        "FREEHOLD_MIGRATE_URL": single,
        "FREEHOLD_DB_POOL_MAX": str(int(settings(spec).get("db_pool_max", 10))),
        "FREEHOLD_DB_POOL_MIN": "1",
        "FREEHOLD_SECRET_KEY": secrets["app_secret_key"],
        "FREEHOLD_COOKIE_SECURE": "1" if spec.servers_with_role("lb") else "0",
        "FREEHOLD_TRUSTED_PROXIES": ",".join(
            ["127.0.0.1"] + [s.mesh_address for s in spec.servers_with_role("lb")]),
        "FREEHOLD_WEB_WORKERS": str(web_workers(spec, me)),
    }
    redis = near_first(spec, me, "redis")
    if redis:
        env["FREEHOLD_REDIS_URL"] = (f"redis://:{quote(secrets['redis'], safe='')}@"
                                     f"{redis[0].mesh_address}:{REDIS_PORT}/0")
        env["FREEHOLD_REDIS_CLUSTER"] = "1"
    media = near_first(spec, me, "media")
    if media:
        # every media server's S3 gateway, this site's first: the app goes on to the next
        # when one is lost (app.services.media)
        env.update({"FREEHOLD_S3_ENDPOINT": ",".join(
                        f"http://{m.mesh_address}:{S3_PORT}" for m in media),
                    "FREEHOLD_S3_BUCKET": bucket(spec),
                    "FREEHOLD_S3_ACCESS_KEY": secrets["s3_access_key"],
                    "FREEHOLD_S3_SECRET_KEY": secrets["s3_secret_key"]})
    for key, value in (settings(spec).get("env") or {}).items():
        name = app_env_name(str(key))
        if name in APP_PLATFORM_ENV:  # the spec loader refuses it first; never let it through
            raise ValueError(f"{spec.path}: roles.app.env.{key}: would override {name}, which "
                             "the kit sets — remove it")
        env[name] = str(value)
    try:
        check_env(env)  # the app's own settings model: no name it ignores, no value it refuses
    except SettingsError as exc:
        raise ValueError(f"{spec.path}: roles.app.env: {exc}") from None
    return env


def env_file(env: dict[str, str]) -> str:
    """systemd EnvironmentFile text, names sorted, values quoted (roles.common.envfile)."""
    return environment_file(dict(sorted(env.items())),
                            "Managed by freehold (roles/app): settings of the app and its workers.")


def lb_runtime_apis(spec: ClusterSpec) -> list[str]:
    """HAProxy runtime API addresses (mesh) of every load balancer."""
    return [f"{s.mesh_address}:{RUNTIME_PORT}" for s in spec.servers_with_role("lb")]


def roll_command(spec: ClusterSpec, me: Server, release: str, timeout: int = 90) -> str:
    """The helper call that drains `me`, moves it to `release` and puts it back."""
    lbs = " ".join(f"--lb {a}" for a in lb_runtime_apis(spec))
    return (f"{HELPER} roll {release} --unit {APP_UNIT} --server {me.name} {lbs} "
            f"--ready http://{me.mesh_address}:{app_port(spec)}/readyz --timeout {timeout} "
            f"--keep {keep_releases(spec)}")


def running_release(cmdline: str | None) -> str | None:
    m = RUNNING_RE.search(cmdline or "")
    return m.group(1) if m else None


def unit_vars(spec: ClusterSpec, me: Server) -> dict[str, Any]:
    return {"server": me, "current": CURRENT, "env_file": ENV_FILE, "user": USER,
            "home": HOME, "host": me.mesh_address, "port": app_port(spec),
            "workers": web_workers(spec, me)}
