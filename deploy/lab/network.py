"""The lab network: a namespace per server, a bridge per site inside one router namespace.

    server netns (eth0 = address/prefix, default via .1)
        └─ veth v<addr> ─ bridge br<site> (.1) ┐
                                             ├ router netns: forwards between sites,
        └─ ...                               │ via the delay line (latency, loss)
    host: <prefix>h ── uplink (transit /30) ─┘   host routes the site nets to the router and
                                                  masquerades them out (nft table fh<tag>)

Latency between sites: traffic routed from one site to another detours through the delay line
(deploy.lab.delayline; this kernel has no netem). Partitions are nftables drop rules in the
router (`inet` family for routed traffic, `bridge` family for traffic inside a site).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from freehold.deploy.lab.errors import LabError
from freehold.deploy.lab.host import enable_ip_forwarding, ip, ip_forwarding, netns_list, nft, sh
from freehold.deploy.lab.layout import LabPlan, LabServer

FAULT_TABLE = "fault"


def _link_exists(name: str, netns: str | None = None) -> bool:
    return ip("link", "show", "dev", name, netns=netns, check=False).returncode == 0


def _ns_exec(netns: str, *args: str) -> None:
    sh(["ip", "netns", "exec", netns, *args])


def setup_router(plan: LabPlan) -> None:
    """Router namespace, site bridges, uplink to the host, host routes and NAT. Idempotent."""
    if not ip_forwarding():
        enable_ip_forwarding()
    ns = plan.router_ns
    if ns not in netns_list():
        ip("netns", "add", ns)
    ip("link", "set", "lo", "up", netns=ns)
    _ns_exec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    if not _link_exists(plan.host_link):
        ip("link", "add", plan.host_link, "type", "veth", "peer", "name", "uplink", "netns", ns)
        ip("addr", "add", f"{plan.host_transit}/30", "dev", plan.host_link)
        ip("addr", "add", f"{plan.router_transit}/30", "dev", "uplink", netns=ns)
    ip("link", "set", plan.host_link, "up")
    ip("link", "set", "uplink", "up", netns=ns)
    ip("route", "replace", "default", "via", str(plan.host_transit), netns=ns)
    for site in plan.sites:
        if not _link_exists(site.bridge, ns):
            ip("link", "add", site.bridge, "type", "bridge", netns=ns)
            ip("addr", "add", f"{site.gateway}/{site.network.prefixlen}", "dev", site.bridge,
               netns=ns)
        ip("link", "set", site.bridge, "up", netns=ns)
        ip("route", "replace", str(site.network), "via", str(plan.router_transit),
           "dev", plan.host_link)
    _setup_delay_routing(plan)
    nets = ", ".join(str(n) for n in [plan.transit, *(s.network for s in plan.sites)])
    t = plan.nft_table
    nft(f"table ip {t} {{}}\ndelete table ip {t}\n"
        f"table ip {t} {{\n  chain post {{\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    ip saddr {{ {nets} }} oifname != "{plan.host_link}" masquerade\n  }}\n}}\n')
    if FAULT_TABLE not in sh(["ip", "netns", "exec", ns, "nft", "list", "tables"]).stdout:
        apply_partitions(plan, [])


def setup_server_net(plan: LabPlan, srv: LabServer) -> None:
    """The server's namespace and its veth onto the site bridge. Idempotent."""
    router = plan.router_ns
    if srv.netns not in netns_list():
        ip("netns", "add", srv.netns)
    if not _link_exists("eth0", srv.netns):
        if _link_exists(srv.port, router):   # half a pair, left by an interrupted run
            ip("link", "del", srv.port, netns=router)
        ip("link", "add", srv.port, "type", "veth", "peer", "name", "eth0", "netns", srv.netns,
           netns=router)
        ip("link", "set", srv.port, "master", plan.site(srv.site).bridge, netns=router)
    set_power(plan, srv, True)
    ip("link", "set", "lo", "up", netns=srv.netns)
    ip("addr", "replace", f"{srv.address}/{srv.prefixlen}", "dev", "eth0", netns=srv.netns)
    ip("link", "set", "eth0", "up", netns=srv.netns)
    ip("route", "replace", "default", "via", str(srv.gateway), netns=srv.netns)


def set_power(plan: LabPlan, srv: LabServer, on: bool) -> None:
    """The server's cable: a powered-off server answers nothing, not even ping."""
    ip("link", "set", srv.port, "up" if on else "down", netns=plan.router_ns)


def teardown(plan: LabPlan) -> None:
    """Delete every namespace, link and table this lab made (veths die with their netns)."""
    existing = netns_list()
    for srv in plan.servers:
        if srv.netns in existing:
            ip("netns", "del", srv.netns, check=False)
    if plan.router_ns in existing:
        ip("netns", "del", plan.router_ns, check=False)
    if _link_exists(plan.host_link):
        ip("link", "del", plan.host_link, check=False)
    sh(["nft", "delete", "table", "ip", plan.nft_table], check=False)


# ---- latency ------------------------------------------------------------------------------
# The kernel here has no netem: traffic between sites detours through the delay line (a TUN
# device served by deploy.lab.delayline in the router namespace), chosen by policy routing.

DELAY_TUN = "delay0"
DELAY_TABLE = "100"


def _setup_delay_routing(plan: LabPlan) -> None:
    ns = plan.router_ns
    if not _link_exists(DELAY_TUN, ns):
        ip("tuntap", "add", "dev", DELAY_TUN, "mode", "tun", netns=ns)
    ip("link", "set", DELAY_TUN, "up", netns=ns)
    for key in ("all", "default", DELAY_TUN, *(s.bridge for s in plan.sites)):
        _ns_exec(ns, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
    rules = ip("rule", "show", netns=ns).stdout
    for site in plan.sites:
        ip("route", "replace", str(site.network), "dev", DELAY_TUN, "table", DELAY_TABLE,
           netns=ns)
        if f"iif {site.bridge} lookup {DELAY_TABLE}" not in rules:
            ip("rule", "add", "iif", site.bridge, "lookup", DELAY_TABLE,
               "pref", str(1000 + site.index), netns=ns)


def links_file(plan: LabPlan) -> Path:
    return plan.state_dir / "links.json"


def write_links(plan: LabPlan, overrides: dict[str, dict] | None = None) -> None:
    """The delay line's settings: the spec's RTT (half each way) unless overridden by `slow`.
    overrides: {"a-b": {"sites": [a, b], "delay_ms": RTT, "loss_pct": per direction}}"""
    links: dict[str, dict[str, float]] = {}
    for a in plan.sites:
        for b in plan.sites:
            if a.index != b.index:
                links[f"{a.name}>{b.name}"] = {"delay_ms": plan.latency(a.name, b.name) / 2,
                                               "loss_pct": 0.0}
    for o in (overrides or {}).values():
        a, b = o["sites"]
        for src, dst in ((a, b), (b, a)):
            links[f"{src}>{dst}"] = {"delay_ms": float(o["delay_ms"]) / 2,
                                     "loss_pct": float(o.get("loss_pct", 0.0))}
    doc = {"sites": {s.name: str(s.network) for s in plan.sites}, "links": links}
    path = links_file(plan)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def link_settings(plan: LabPlan) -> dict[str, dict[str, float]]:
    """One-way delay and loss per 'src>dst' site pair, as the delay line applies them."""
    return json.loads(links_file(plan).read_text())["links"]


# ---- partitions ---------------------------------------------------------------------------

def apply_partitions(plan: LabPlan, cuts: Iterable[tuple[list[str], list[str]]]) -> None:
    """Replace the router's drop rules: each cut drops traffic both ways between two sets of
    server names (routed between sites and bridged within a site)."""
    rules = []
    for left, right in cuts:
        la = ", ".join(str(plan.server(n).address) for n in left)
        ra = ", ".join(str(plan.server(n).address) for n in right)
        if la and ra:
            rules.append(f"    ip saddr {{ {la} }} ip daddr {{ {ra} }} drop")
            rules.append(f"    ip saddr {{ {ra} }} ip daddr {{ {la} }} drop")
    body = "\n".join(rules)
    script = ""
    for family in ("inet", "bridge"):
        script += (f"table {family} {FAULT_TABLE} {{}}\ndelete table {family} {FAULT_TABLE}\n"
                   f"table {family} {FAULT_TABLE} {{\n  chain forward {{\n"
                   f"    type filter hook forward priority 0; policy accept;\n{body}\n  }}\n}}\n")
    nft(script, netns=plan.router_ns)


def router_exists(plan: LabPlan) -> bool:
    return plan.router_ns in netns_list()


def ping_gateway(srv: LabServer) -> bool:
    with contextlib.suppress(LabError):
        sh(["ip", "netns", "exec", srv.netns, "ping", "-c1", "-W1", str(srv.gateway)])
        return True
    return False
