"""roles/lb: HAProxy 2.6 (TLS with HTTP/2, /healthz health checks of the app servers, retries
and redispatch, per-IP connection limits, stats page and runtime API on the mesh only) and
keepalived holding the site's virtual IP (VRRP between the site's load balancers)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.roles.common import (
    config_file,
    ensure_packages,
    mesh_dropin,
    render,
    service,
    templates_of,
    this_server,
)
from freehold.roles.lb.config import (
    CERT_PATH,
    CONFIG,
    HTTP_PORT,
    HTTPS_PORT,
    KEEPALIVED_CONFIG,
    RUNTIME_PORT,
    STATS_PORT,
    haproxy_vars,
    keepalived_vars,
)
from freehold.roles.lb.facts import InterfaceOf, OpenFilesLimit
from freehold.roles.lb.tls import certificate_pem
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PORTS = Ports(public_tcp=(HTTP_PORT, HTTPS_PORT), mesh_tcp=(STATS_PORT, RUNTIME_PORT),
              extra_rules=("ip saddr @cluster_peers ip protocol vrrp accept comment \"vrrp\"",))


def _fd_limit() -> int:
    """Descriptors HAProxy may have: 1M, or less where the host caps it (containers)."""
    limit = host.get_fact(OpenFilesLimit)
    return 65536 if limit is None else min(1048576, limit)


_t = templates_of(__file__)


def _interface(address: str) -> str:
    """The network interface holding `address` (the virtual IP goes on the same one)."""
    name = host.get_fact(InterfaceOf, address=address)
    if not name:
        raise RuntimeError(f"no interface holds {address} on {host.name}")
    return name


@deploy("lb: HAProxy and keepalived")
def configure(ctx) -> None:
    me = this_server(ctx)
    ensure_packages(["haproxy", "keepalived", "socat"], "lb")

    files.directory(name="HAProxy certificates folder", path="/etc/haproxy/certs",
                    group="haproxy", mode="750")
    cert = config_file(CERT_PATH, certificate_pem(ctx.spec), mode="640", group="haproxy")
    fds = _fd_limit()
    cfg = config_file(CONFIG, render(_t("haproxy.cfg.j2"),
                                     **haproxy_vars(ctx.spec, me, fd_limit=fds)),
                      mode="640", group="haproxy")
    server.shell(name="Check HAProxy config", commands=[f"haproxy -c -q -f {CONFIG}"],
                 _if=[cfg.did_change])
    # binds the mesh address (stats, runtime API): start after the mesh, restart on failure
    dropin = mesh_dropin("haproxy")
    limits = config_file("/etc/systemd/system/haproxy.service.d/20-freehold-limits.conf",
                         "# Managed by freehold (roles/lb): descriptors for maxconn.\n"
                         f"[Service]\nLimitNOFILE={fds}\n")
    unit_changed = dropin.will_change or limits.will_change
    # a reload keeps open connections (master-worker: new workers take over the sockets)
    service("haproxy", restart=unit_changed, reload=cfg.will_change or cert.will_change,
            daemon_reload=unit_changed)

    ka = config_file(KEEPALIVED_CONFIG,
                     render(_t("keepalived.conf.j2"),
                            **keepalived_vars(ctx.spec, me, _interface(me.public_address))),
                     mode="640")
    service("keepalived", reload=ka.will_change)


ROLE = Role("lb", steps=(configure,), ports=PORTS, units=("haproxy.service", "keepalived.service"))
