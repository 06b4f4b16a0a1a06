"""roles/pgbouncer: pgbouncer pools client connections in front of a local HAProxy that
routes to the Patroni primary (/primary) and fresh replicas (/replica?lag=)."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files

from freehold.roles.common import (
    config_file,
    ensure_packages,
    mesh_dropin,
    render,
    service,
    templates_of,
    this_server,
)
from freehold.roles.pgbouncer.config import (
    PGBOUNCER_PORT,
    PRIMARY_PORT,
    REPLICA_PORT,
    haproxy_vars,
    pgbouncer_vars,
    userlist,
)
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PORTS = Ports(mesh_tcp=(PGBOUNCER_PORT, PRIMARY_PORT, REPLICA_PORT))
ROUTER = "freehold-pgrouter"


_t = templates_of(__file__)


def packages(ctx) -> list[str]:
    return ["pgbouncer", "haproxy"]


@deploy("pgbouncer")
def configure(ctx) -> None:
    srv = this_server(ctx)
    ensure_packages(packages(ctx), "pgbouncer")

    cfg = config_file("/etc/haproxy/pgrouter.cfg",
                      render(_t("pgrouter.cfg.j2"), **haproxy_vars(ctx.spec, srv)),
                      mode="640", group="haproxy")
    unit = config_file(f"/etc/systemd/system/{ROUTER}.service",
                       render(_t("freehold-pgrouter.service.j2")))
    service(ROUTER, restart=unit.will_change, reload=cfg.will_change,
            daemon_reload=unit.will_change)

    files.directory(name="pgbouncer config folder", path="/etc/pgbouncer", group="postgres",
                    mode="750")
    users = config_file("/etc/pgbouncer/userlist.txt", userlist(ctx.secrets), mode="640",
                        user="postgres", group="postgres")
    ini = config_file("/etc/pgbouncer/pgbouncer.ini",
                      render(_t("pgbouncer.ini.j2"), **pgbouncer_vars(ctx.spec, srv)),
                      mode="640", user="postgres", group="postgres")
    dropin = mesh_dropin("pgbouncer")
    # listen addresses only change on restart; the user list reloads
    service("pgbouncer", restart=ini.will_change or dropin.will_change,
            reload=users.will_change, daemon_reload=dropin.will_change)


ROLE = Role("pgbouncer",
            steps=(configure,),
            ports=PORTS,
            units=("pgbouncer.service", "freehold-pgrouter.service"),
            packages=packages)
