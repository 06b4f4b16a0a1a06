"""roles/postgres: PostgreSQL 15 under Patroni 3 (Debian packages) with etcd as DCS,
synchronous mode with the standby in another site, watchdog, pg_rewind, archive_timeout,
tuned from the server's RAM and cores; then the app's role, database and extensions."""

from __future__ import annotations

import yaml
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.roles.common import (
    config_file,
    ensure_packages,
    render,
    service,
    templates_of,
    this_server,
)
from freehold.roles.ports import Ports
from freehold.roles.postgres.config import (
    APP_DATABASE,
    CONFIG,
    LOOP_WAIT,
    PATRONICTL,
    PG_PORT,
    REST_PORT,
    RETRY_TIMEOUT,
    TTL,
    app_sql,
    override_vars,
    patroni_config,
)
from freehold.roles.postgres.facts import DatabaseExists, PatroniRole
from freehold.roles.registry import Role

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
                       render(_t("patroni-override.conf.j2"), **override_vars(ctx.spec, srv)))
    # Patroni re-reads its config on SIGHUP; members start together, one bootstraps
    service("patroni", reload=conf.will_change, daemon_reload=unit.will_change)


BOOTSTRAP_WAIT_S = 300  # initdb on the leader, then a base backup per replica


def patroni_role(mesh_address: str) -> str:
    """leader / replica / none, as the local Patroni says now (roles.postgres.facts)."""
    return str(host.get_fact(PatroniRole, mesh_address=mesh_address))


def wait_patroni_command(mesh_address: str, timeout_s: int = BOOTSTRAP_WAIT_S) -> str:
    """Waits (bounded) until the local Patroni runs PostgreSQL as leader or replica; exits 1
    naming the log to read when it does not."""
    check = PatroniRole().command(mesh_address)
    return (f"end=$(( $(date +%s) + {timeout_s} )); "
            f"until [ \"$({check})\" != none ]; do "
            f"if [ $(date +%s) -ge $end ]; then echo 'patroni: no running PostgreSQL after "
            f"{timeout_s} s — see journalctl -u patroni' >&2; exit 1; fi; sleep 1; done")


@deploy("postgres: wait for Patroni")
def wait_patroni(ctx) -> None:
    """A member that has just started bootstraps (initdb on the leader, a base backup on each
    replica): wait for it here, as an operation, only when it is not serving yet."""
    srv = this_server(ctx)
    if patroni_role(srv.mesh_address) == "none":
        server.shell(name="Wait for Patroni to run PostgreSQL",
                     commands=[wait_patroni_command(srv.mesh_address)])


def timing_changes(doc: dict) -> dict[str, int]:
    """Patroni's failure-detection settings that differ from roles.postgres.config's (they
    live in the DCS: `bootstrap.dcs` only sets them when the cluster is created)."""
    want = {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT}
    return {k: v for k, v in want.items() if doc and doc.get(k) != v}


@deploy("postgres: failure detection")
def failure_detection(ctx) -> None:
    """On the leader: ttl, loop_wait and retry_timeout in Patroni's dynamic config."""
    from freehold.roles.backup.facts import PatroniDynamicConfig

    srv = this_server(ctx)
    if patroni_role(srv.mesh_address) != "leader":
        return
    changes = timing_changes(host.get_fact(PatroniDynamicConfig, patronictl=PATRONICTL))
    if changes:
        sets = " ".join(f"-s {k}={v}" for k, v in sorted(changes.items()))
        server.shell(name="Patroni failure detection in its dynamic config",
                     commands=[f"{PATRONICTL} edit-config --force --quiet {sets}"])


@deploy("postgres: app database")
def app_database(ctx) -> None:
    srv = this_server(ctx)
    role = patroni_role(srv.mesh_address)
    sql = config_file(APP_SQL, app_sql(ctx.secrets), mode="600", user="postgres",
                      group="postgres")
    if role != "leader":
        return
    exists = host.get_fact(DatabaseExists, database=APP_DATABASE)
    if sql.will_change or not exists:
        server.shell(name="Create the app's role, database and extensions",
                     commands=[f"runuser -u postgres -- psql -X -q -f {APP_SQL}"])


ROLE = Role("postgres",
            steps=(configure, wait_patroni, failure_detection, app_database),
            ports=PORTS,
            units=("patroni.service",),
            packages=packages,
            before_packages=before_packages)
