"""roles/postgres: PostgreSQL 15 under Patroni 3 (Debian packages) with etcd as DCS,
synchronous mode with the standby in another site, watchdog, pg_rewind, archive_timeout,
tuned from the server's RAM and cores; then the app's role, database and extensions."""

from __future__ import annotations

import json
import shlex

import yaml
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.deploy.spec import ClusterSpec
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
    PATRONICTL,
    PG_PORT,
    REST_PORT,
    app_sql,
    dynamic_settings,
    members,
    patroni_config,
    primary_site_member,
    roles_sql,
)
from freehold.roles.postgres.facts import DatabaseExists, PatroniDynamic, PatroniRole
from freehold.roles.registry import Role

PORTS = Ports(mesh_tcp=(PG_PORT, REST_PORT))
APP_SQL = "/etc/patroni/freehold-app.sql"
ROLES_SQL = "/etc/patroni/freehold-roles.sql"


_t = templates_of(__file__)


def packages(ctx) -> list[str]:
    return ["postgresql-15", "patroni", "python3-etcd", "curl"]


def before_packages(ctx) -> None:
    """Before postgresql-15 is installed: its postinst must not create a `main` cluster
    (Patroni creates and runs the cluster)."""
    files.directory(name="createcluster.d", path="/etc/postgresql-common/createcluster.d")
    config_file("/etc/postgresql-common/createcluster.d/00-freehold.conf",
                render(_t("createcluster.conf.j2")))


@deploy("postgres: Patroni's role passwords")
def role_passwords(ctx) -> None:
    """A rotated superuser, replication or rewind secret (config.PATRONI_ROLES) is set on the
    running leader before `configure` gives any member's Patroni the new one. The file is
    written on every member (root's, 600: postgres may not exist yet) and run on the leader
    when it changed; a new cluster's bootstrap creates the roles with the same secrets."""
    srv = this_server(ctx)
    files.directory(name="Patroni config folder", path="/etc/patroni")
    sql = config_file(ROLES_SQL, roles_sql(ctx.secrets), mode="600")
    if sql.will_change and patroni_role(srv.mesh_address) == "leader":
        server.shell(name="Set the passwords of Patroni's roles",
                     commands=[f"runuser -u postgres -- psql -X -q -d postgres < {ROLES_SQL}"])


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
    # Patroni re-reads its config on SIGHUP. A new cluster's leader is whichever member takes
    # etcd's initialize key first: the primary site's member starts alone (op A), the others
    # wait for a primary (op B) and start after it (op C), so the leader begins in
    # roles.postgres.primary_site. pyinfra runs each operation on every host before the next,
    # in the order of these lines, so the three calls must stay on separate lines in this order.
    first = primary_site_member(ctx.spec)
    new = patroni_role(srv.mesh_address) == "none"
    if srv.name == first:
        service("patroni", reload=conf.will_change, daemon_reload=unit.will_change)  # op A
    elif first is not None and new:
        server.shell(name="Wait for a primary before joining",  # op B
                     commands=[wait_primary_command(primary_urls(ctx.spec))])
    if srv.name != first:
        service("patroni", reload=conf.will_change, daemon_reload=unit.will_change)  # op C


BOOTSTRAP_WAIT_S = 300  # initdb on the leader, then a base backup per replica
JOIN_WAIT_S = 180  # how long a new member waits for a primary before starting anyway


def primary_urls(spec: ClusterSpec) -> list[str]:
    return [f"http://{m.mesh_address}:{REST_PORT}/primary" for m in members(spec)]


def wait_primary_command(urls: list[str], timeout_s: int = JOIN_WAIT_S) -> str:
    """Waits (bounded) until one of `urls` (members' Patroni /primary) answers 200; after
    timeout_s it starts anyway (the primary site's member may be dead: the leader then begins
    elsewhere and `freehold status` notes it) rather than failing the deploy."""
    quoted = " ".join(shlex.quote(u) for u in urls)
    return (f"end=$(( $(date +%s) + {timeout_s} )); "
            f"while [ $(date +%s) -lt $end ]; do for u in {quoted}; do "
            "[ \"$(curl -s -o /dev/null -m 2 -w '%{http_code}' \"$u\")\" = 200 ] && exit 0; "
            "done; sleep 1; done; "
            f"echo 'patroni: no primary after {timeout_s} s — starting anyway' >&2")


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


@deploy("postgres: cluster settings")
def cluster_settings(ctx) -> None:
    """ttl, loop_wait, retry_timeout, failsafe_mode... (config.dynamic_settings) live in etcd
    once the cluster exists (bootstrap.dcs is read only at its creation): the leader sets those
    that differ."""
    srv = this_server(ctx)
    if patroni_role(srv.mesh_address) != "leader":
        return
    have = host.get_fact(PatroniDynamic, mesh_address=srv.mesh_address)
    if not have:
        return
    change = {k: v for k, v in dynamic_settings().items() if have.get(k) != v}
    if change:
        sets = " ".join(f"-s {k}={json.dumps(v)}" for k, v in sorted(change.items()))
        server.shell(name=f"Set Patroni's {', '.join(sorted(change))}",
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
            steps=(role_passwords, configure, wait_patroni, cluster_settings, app_database),
            ports=PORTS,
            units=("patroni.service",),
            packages=packages,
            before_packages=before_packages)
