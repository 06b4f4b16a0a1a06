"""Scaled lab specs: hundreds of lab servers with the heavy data roles kept at lab size.

    freehold lab scale --servers 300 --out inventories/lab-300.yaml

writes a spec of exactly N servers over the production example's 4 sites and 3 providers, with
its round-trip latencies (inventories/production-example.yaml is read for them). A fixed core of
12 servers carries the platform at lab size (3 PostgreSQL, 6 Redis, 3 media, 3 etcd, 2 load
balancers per site, 4 app and 2 worker servers, 2 monitoring, a backup host, a load generator);
every other server ("node") carries what every production server carries: `base`, `mesh` and
the monitoring exporters (roles/monitoring runs the node exporter on every server of the spec).

Growing N only appends nodes at the end of each site's range: names, addresses and mesh
addresses of the servers already there never move (the loader counts mesh addresses per site in
spec order), so `--servers 310` after `--servers 300` is the same cluster plus 10 servers.

Pure text generation (no side effects); `render_spec` is byte-for-byte reproducible, and the
committed inventories/lab-300.yaml is checked against it by tests/unit/test_lab_scale.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import yaml

from freehold.deploy.spec import ClusterSpec

DEFAULT_NET = ipaddress.IPv4Network("10.210.0.0/16")
DEFAULT_MESH = ipaddress.IPv4Network("100.113.0.0/16")
LIKE = "inventories/production-example.yaml"
CORE_FIRST_HOST = 10          # core servers: .10 and up in their site's /24
NODE_FIRST_HOST = 20          # nodes: .20 to .254
NODE_LAST_HOST = 254
SITE_COUNT = 4

# The core, per site in the production example's site order (ash owned, dal and chi rented,
# pdx cloud): the shape of inventories/lab.yaml (deployed by every CI run) on 4 sites, every
# site serving (2 load balancers each). Site 0 holds the PostgreSQL primary, site 1 the
# synchronous standby; Redis shards and media masters over sites 0, 1 and 3.
CORE: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("etcd", "postgres", "redis", "media"), ("redis", "lb", "pgbouncer", "monitoring"),
     ("lb", "app", "worker")),
    (("etcd", "postgres", "redis", "media"), ("redis", "lb", "pgbouncer"),
     ("lb", "app", "worker", "backup")),
    (("lb", "app"), ("lb",)),
    (("etcd", "postgres", "redis", "media"), ("redis", "lb", "monitoring"),
     ("lb", "app"), ("backup", "loadgen")),
)
LAB_SCRAPE_INTERVAL_S = 60
SLOW_SCRAPE_FROM = 100  # servers; smaller scaled labs (CI's 30) keep the 10 s default
CORE_SIZE = sum(len(site) for site in CORE)
MAX_SERVERS = CORE_SIZE + SITE_COUNT * (NODE_LAST_HOST - NODE_FIRST_HOST + 1)


class ScaleError(ValueError):
    """A scaled spec that cannot be made: one line naming the option and the fix."""


@dataclass(frozen=True)
class ScaleRequest:
    servers: int
    name: str
    net: ipaddress.IPv4Network = DEFAULT_NET
    mesh: ipaddress.IPv4Network = DEFAULT_MESH
    core: bool = True             # False: every server is a node (a bare mesh lab)

    def command(self, out: str) -> str:
        """The command line that writes this spec (printed in its header)."""
        parts = [f"freehold lab scale --servers {self.servers} --name {self.name}",
                 f"--net {self.net} --mesh {self.mesh}"]
        if not self.core:
            parts.append("--no-core")
        return " ".join(parts) + f" --out {out}"


def check(req: ScaleRequest) -> None:
    """Raise ScaleError when the request cannot be laid out."""
    low = CORE_SIZE + 1 if req.core else SITE_COUNT
    if not low <= req.servers <= MAX_SERVERS:
        raise ScaleError(f"--servers {req.servers}: give {low} to {MAX_SERVERS} (the core is "
                         f"{CORE_SIZE} servers; each site's /24 holds "
                         f"{NODE_LAST_HOST - NODE_FIRST_HOST + 1} nodes)")
    if req.net.prefixlen > 21:
        raise ScaleError(f"--net {req.net}: give a /21 or wider (the sites take its 2nd to 5th "
                         "/24, the lab router's uplink its last /30)")
    if req.mesh.prefixlen > 20:
        raise ScaleError(f"--mesh {req.mesh}: give a /20 or wider (a block per site)")


def site_networks(net: ipaddress.IPv4Network) -> list[ipaddress.IPv4Network]:
    """The sites' /24s: the 2nd to 5th of the lab network (the 1st is left free)."""
    subnets = net.subnets(new_prefix=24)
    next(subnets)
    return [next(subnets) for _ in range(SITE_COUNT)]


def node_counts(req: ScaleRequest) -> list[int]:
    """Nodes per site: the servers beyond the core, spread evenly (the first sites one more)."""
    nodes = req.servers - (CORE_SIZE if req.core else 0)
    base, extra = divmod(nodes, SITE_COUNT)
    return [base + (1 if i < extra else 0) for i in range(SITE_COUNT)]


def _range(text: str, first: int, count: int, width: int = 0) -> str:
    if count == 1:
        return text.format(f"{first:0{width}d}")
    return text.format(f"[{first:0{width}d}:{first + count - 1:0{width}d}]")


def scaled_doc(req: ScaleRequest, like: ClusterSpec) -> dict[str, Any]:
    """The spec document (what the YAML holds)."""
    check(req)
    if len(like.sites) != SITE_COUNT or len(like.providers) != 3:
        raise ScaleError(f"{like.path}: has {len(like.sites)} sites and {len(like.providers)} "
                         f"providers — the scaled lab copies {SITE_COUNT} sites at 3 providers")
    nets = site_networks(req.net)
    names = [s.name for s in like.sites]
    sites = []
    for i, site in enumerate(like.sites):
        entry: dict[str, Any] = {"name": site.name, "provider": site.provider,
                                 "network": str(nets[i])}
        later = {o: _ms(site.latency_ms[o]) for o in names[i + 1:] if o in site.latency_ms}
        if later:
            entry["latency_ms"] = later
        sites.append(entry)
    servers: list[dict[str, Any]] = []
    for i, (site, count) in enumerate(zip(names, node_counts(req), strict=True)):
        prefix = ".".join(str(nets[i].network_address).split(".")[:3])
        if req.core:
            for k, roles in enumerate(CORE[i]):
                servers.append({"name": f"{site}-{k + 1}", "site": site,
                                "address": f"{prefix}.{CORE_FIRST_HOST + k}",
                                "roles": list(roles)})
        if count:
            servers.append({"name": _range(site + "-n{}", 1, count, 3), "site": site,
                            "address": _range(prefix + ".{}", NODE_FIRST_HOST, count),
                            "roles": []})
    doc: dict[str, Any] = {
        "name": req.name,
        "description": (f"Scaled lab: {req.servers} servers over {SITE_COUNT} sites and 3 "
                        "providers, heavy data roles at lab size"),
        "providers": [{"name": p.name, "kind": p.kind} for p in like.providers],
        "sites": sites,
        "lab": {"network": str(req.net)},
        "mesh": {"network": str(req.mesh)},
        "defaults": {"ssh_user": "root", "ssh_port": 22, "cores": 1, "ram_gib": 1,
                     "disk_gib": 10},
    }
    # every server's node exporter scraped by each Prometheus: at 300 servers every 10 s that
    # took more than this machine's 2 cores (each server has its own in production)
    doc["roles"] = ({"monitoring": {"scrape_interval_s": LAB_SCRAPE_INTERVAL_S}}
                    if req.servers >= SLOW_SCRAPE_FROM else {})
    if req.core:
        doc["roles"].update({"etcd": {}, "postgres": {"primary_site": names[0],
                                                      "standby_site": names[1]},
                             "redis": {"replicas": 1}, "media": {"masters": 3}, "lb": {}})
    doc["servers"] = servers
    return doc


def _ms(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def header(req: ScaleRequest, out: str, like: ClusterSpec) -> str:
    """What is scaled and what is not, as the spec's comment header."""
    counts = node_counts(req)
    source = LIKE if like.path.endswith(LIKE.rsplit("/", 1)[-1]) else like.path
    per_site = ", ".join(f"{s.name} {n}" for s, n in zip(like.sites, counts, strict=True))
    lines = [
        f"GENERATED by: {req.command(out)}",
        "(deploy/lab/scale.py; do not edit by hand, run the command again)",
        "",
        f"{req.servers} lab servers over the {SITE_COUNT} sites and 3 providers of {source},",
        "with its round-trip latencies between sites (the lab router's delay line adds them).",
        "",
    ]
    if req.core:
        lines += [
            f"NOT scaled (lab size, {CORE_SIZE} core servers named <site>-<n>): 3 PostgreSQL "
            "(Patroni),",
            "  3 etcd, 6 Redis (3 shards x 1 replica), 3 media (SeaweedFS), 2 load balancers "
            "per site,",
            "  4 app and 2 worker servers, 2 pgbouncer, 2 monitoring (Prometheus), 2 backup, "
            "1 load generator.",
            "  These hold data or serve traffic: production sizes them by load "
            "(freehold capacity),",
            "  a lab on 2 cores cannot run 300 of them.",
        ]
    lines += [
        f"SCALED ({sum(counts)} nodes named <site>-n<NNN>, {per_site}): what every "
        "production",
        "  server carries: base (sshd, nftables, chrony, sysctl, upgrades), mesh "
        "(WireGuard: every",
        f"  server holds all {req.servers - 1} peers; wireguard-go in the lab) and the "
        "monitoring exporters",
        "  (the node exporter, deployed by roles/monitoring on every server of the spec; "
        "Prometheus",
        *((f"  scrapes all {req.servers}, every {LAB_SCRAPE_INTERVAL_S} s here: "
           "roles.monitoring.scrape_interval_s,",
           "  10 s by default; at 300 servers, 2 Prometheus scraping every 10 s took more "
           "than this",
           "  machine's 2 cores, which every lab server shares).")
          if req.servers >= SLOW_SCRAPE_FROM else (f"  scrapes all {req.servers}).",)),
        "  No light role on the nodes: the deployable roles left (app, worker, pgbouncer) "
        "are listed",
        "  by every app and load balancer, so one on every node is not light; the nodes' "
        "memory goes",
        "  to WireGuard peers and exporters instead.",
        "Growing --servers appends nodes at the end of each site: existing servers keep "
        "their names,",
        "  addresses and mesh addresses (adding servers to a running lab is a redeploy).",
        "Boot: freehold lab up --spec THIS_FILE --timeout 600  (down: freehold lab down "
        "--spec THIS_FILE)",
    ]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def render_spec(req: ScaleRequest, like: ClusterSpec, out: str) -> str:
    """The spec file's text: header, then the document (flow style per server, as the other
    inventories write them)."""
    doc = scaled_doc(req, like)
    servers = doc.pop("servers")
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)
    lines = ["servers:"]
    for s in servers:
        fields = ", ".join(f"{k}: {_flow(v)}" for k, v in s.items())
        lines.append(f"  - {{{fields}}}")
    return header(req, out, like) + "\n" + body + "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    text = str(value)
    return f"'{text}'" if "[" in text else text
