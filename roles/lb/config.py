"""Pure config for the load balancers: HAProxy (TLS, HTTP/2, /healthz checks, retries and
redispatch, per-IP connection limits, stats and runtime API on the mesh) and keepalived (one
virtual IP per site, VRRP between the site's load balancers over unicast, so it works where
multicast does not: provider networks, the lab's bridges). Settings under `roles.lb`:

    vips: {site: address}          # default: .5 of the site's network
    vrid_base: 50                  # VRRP router ids: base + the site's index
    tls_cert: path, tls_key: path  # PEM files (relative to the spec); default: self-signed
    hostnames: [names]             # extra names for the self-signed certificate
    conn_limit_per_ip: 200         # concurrent connections per client address
    conn_limit_exempt: [networks]  # addresses the per-address limit does not apply to; the
                                   # spec's loadgen servers are always exempt (one load
                                   # generator speaks for hundreds of simulated users)
    maxconn: 20000
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.app.config import app_port
from freehold.roles.ports import HTTP_PORT, HTTPS_PORT
from freehold.roles.ports import LB_RUNTIME_PORT as RUNTIME_PORT
from freehold.roles.ports import LB_STATS_PORT as STATS_PORT

CERT_PATH = "/etc/haproxy/certs/freehold.pem"
CONFIG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"


class LbConfigError(ValueError):
    pass


def settings(spec: ClusterSpec) -> dict[str, Any]:
    return spec.role_settings("lb")


def site_vip(spec: ClusterSpec, site: str) -> str | None:
    """The site's virtual IP: `roles.lb.vips[site]`, else .5 of the site's network."""
    vips = settings(spec).get("vips") or {}
    if site in vips:
        return str(ipaddress.IPv4Address(str(vips[site])))
    net = spec.site(site).network
    if net is None:
        return None
    return str(net.network_address + 5)


def vips(spec: ClusterSpec) -> dict[str, str]:
    """{site: virtual IP} of every site with load balancers."""
    out = {}
    for site in spec.sites:
        if any(s.site == site.name for s in spec.servers_with_role("lb")):
            vip = site_vip(spec, site.name)
            if vip:
                out[site.name] = vip
    return out


def vip_prefix(spec: ClusterSpec, site: str) -> int:
    net = spec.site(site).network
    return net.prefixlen if net is not None else 32


def vrid(spec: ClusterSpec, site: str) -> int:
    names = [s.name for s in spec.sites]
    base = int(settings(spec).get("vrid_base", 50))
    return (base + names.index(site)) % 254 + 1


def site_lbs(spec: ClusterSpec, site: str) -> list[Server]:
    return [s for s in spec.servers_with_role("lb") if s.site == site]


def backends(spec: ClusterSpec, me: Server) -> list[dict[str, Any]]:
    """App servers in HAProxy: those of my site at full weight, other sites' at weight 1 (they
    take over when my site's are drained or down)."""
    out = []
    for s in spec.servers_with_role("app"):
        out.append({"name": s.name, "address": s.mesh_address, "port": app_port(spec),
                    "weight": 100 if s.site == me.site else 1})
    return out


def auth_pass(spec: ClusterSpec, site: str) -> str:
    """VRRP PASS authentication (8 characters): keeps another cluster's VRRP out."""
    return hashlib.sha256(f"{spec.name}/{site}".encode()).hexdigest()[:8]


def conn_limit_exempt(spec: ClusterSpec) -> list[str]:
    """Source networks the per-address connection limit leaves alone: the spec's own load
    generators (public and mesh addresses: one of them speaks for hundreds of simulated users,
    which a limit meant for one abusive client would cut off) and `conn_limit_exempt`."""
    out: list[str] = []
    for s in spec.servers_with_role("loadgen"):
        out += [s.public_address, s.mesh_address]
    out += [str(ipaddress.ip_network(str(n), strict=False))
            for n in settings(spec).get("conn_limit_exempt") or []]
    return list(dict.fromkeys(a for a in out if a))


def haproxy_vars(spec: ClusterSpec, me: Server, fd_limit: int = 1048576) -> dict[str, Any]:
    """`fd_limit`: descriptors HAProxy may open (two per connection: maxconn is capped)."""
    cfg = settings(spec)
    return {
        "server": me,
        "mesh": me.mesh_address,
        "http_port": HTTP_PORT,
        "https_port": HTTPS_PORT,
        "stats_port": STATS_PORT,
        "runtime_port": RUNTIME_PORT,
        "cert": CERT_PATH,
        "maxconn": min(int(cfg.get("maxconn", 20000)), max(256, (fd_limit - 200) // 2)),
        "conn_limit": int(cfg.get("conn_limit_per_ip", 200)),
        "conn_limit_exempt": conn_limit_exempt(spec),
        "backends": backends(spec, me),
    }


def keepalived_vars(spec: ClusterSpec, me: Server, interface: str) -> dict[str, Any]:
    peers = site_lbs(spec, me.site)
    vip = site_vip(spec, me.site)
    if vip is None:
        raise LbConfigError(f"{spec.path}: site {me.site} has no network and roles.lb.vips "
                            f"has no address for it — add `vips: {{{me.site}: <address>}}`")
    rank = [p.name for p in peers].index(me.name)
    return {
        "server": me,
        "site": me.site,
        "interface": interface,
        "vip": vip,
        "prefix": vip_prefix(spec, me.site),
        "vrid": vrid(spec, me.site),
        "priority": max(1, 150 - 10 * rank),
        "source": me.public_address,
        "peers": [p.public_address for p in peers if p.name != me.name],
        "auth_pass": auth_pass(spec, me.site),
    }
