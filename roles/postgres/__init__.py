"""roles/postgres: PostgreSQL 15 under Patroni 3 (Debian packages) with etcd as DCS,
synchronous mode with the standby in another site, watchdog, pg_rewind, archive_timeout,
tuned from the server's RAM and cores; then the app's role, database and extensions."""

from __future__ import annotations

import yaml
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from roles.common import (
    config_file,
    ensure_packages,
    render,
    service,
    templates_of,
    this_server,
)
from roles.ports import Ports
from roles.postgres.config import (
    APP_DATABASE,
    CONFIG,
    PG_PORT,
    REST_PORT,
    app_sql,
    patroni_config,
)
from roles.registry import Role

PORTS = Ports(mesh_tcp=(PG_PORT, REST_PORT))
APP_SQL = "/etc/patroni/freehold-app.sql"


_t = templates_of(__file__)


def packages(ctx) -> list[str]:
    return ["postgresql-15", "patroni", "python3-etcd", "curl"]


def before_packages(ctx) -> None:
    """Before postgresql-15 is installed: its postinst must not create a `main` cluster
    (Patroni creates and runs the cluster)."""
    files.directory(name="createcluster.d", path="/etc/postgresql-common/createcluster.d")
    config_file("/etc/postgresql-common/createcluster.d/00-freehold.conf",
                render(_t("createcluster.conf.j2")))


@deploy("postgres: Patroni")
def configure(ctx) -> None:
    srv = this_server(ctx)
    before_packages(ctx)
    ensure_packages(packages(ctx), "postgres")
    files.directory(name="PostgreSQL data parent", path="/var/lib/postgresql/15",
                    user="postgres", group="postgres", mode="700")
    text = "# Managed by freehold (roles/postgres)\n" + yaml.safe_dump(
        patroni_config(ctx.spec, srv, ctx.secrets), sort_keys=False)
    conf = config_file(CONFIG, text, mode="600", user="postgres", group="postgres")
    files.directory(name="patroni drop-in folder", path="/etc/systemd/system/patroni.service.d")
    unit = config_file("/etc/systemd/system/patroni.service.d/freehold.conf",
                       render(_t("patroni-override.conf.j2")))
    # Patroni re-reads its config on SIGHUP; members start together, one bootstraps
    service("patroni", reload=conf.will_change, daemon_reload=unit.will_change)


BOOTSTRAP_WAIT_S = 300  # initdb on the leader, then a base backup per replica


def patroni_role(mesh_address: str) -> str:
    """Wait (bounded) until the local Patroni runs PostgreSQL as the leader holding the lock
    (/primary answers 200) or as a replica (/replica answers 200), then say leader/replica;
    none when neither came. (/health alone is not enough: a member that has just run initdb
    serves before it takes the leader key, and would be taken for a replica.)"""
    base = f"http://{mesh_address}:{REST_PORT}"
    out = host.get_fact(
        Command,
        f"role=none; end=$(( $(date +%s) + {BOOTSTRAP_WAIT_S} )); "
        f"while [ $(date +%s) -lt $end ]; do "
        f"if curl -fs --max-time 3 -o /dev/null {base}/primary; then role=leader; break; fi; "
        f"if curl -fs --max-time 3 -o /dev/null {base}/replica; then role=replica; break; fi; "
        f"sleep 1; done; echo $role",
    )
    return (out or "none").strip()


@deploy("postgres: app database")
def app_database(ctx) -> None:
    srv = this_server(ctx)
    role = patroni_role(srv.mesh_address)
    sql = config_file(APP_SQL, app_sql(ctx.secrets), mode="600", user="postgres",
                      group="postgres")
    if role == "none":
        server.shell(name="Patroni is not running PostgreSQL here",
                     commands=[f"echo 'patroni: no running PostgreSQL after {BOOTSTRAP_WAIT_S} s "
                               "— see journalctl -u patroni' >&2; exit 1"])
        return
    if role != "leader":
        return
    missing = host.get_fact(
        Command,
        "runuser -u postgres -- psql -XtAq -c "
        f"\"SELECT count(*) FROM pg_database WHERE datname = '{APP_DATABASE}'\"",
    )
    if sql.will_change or (missing or "").strip() != "1":
        server.shell(name="Create the app's role, database and extensions",
                     commands=[f"runuser -u postgres -- psql -X -q -f {APP_SQL}"])


ROLE = Role("postgres",
            steps=(configure, app_database),
            ports=PORTS,
            units=("patroni.service",),
            packages=packages,
            before_packages=before_packages)
