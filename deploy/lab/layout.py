"""What a lab is made of, derived from a cluster spec: names, addresses, sites, latencies.

Pure data (no side effects), so it is unit-tested without root. Every name the lab creates on
the machine starts with `fh<tag>-` (tag = the spec name, shortened with a hash when long), so
several labs run side by side and `down` finds exactly what its lab made.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from freehold.deploy.lab.errors import LabError
from freehold.deploy.spec import ClusterSpec
from freehold.deploy.spec.models import DEFAULT_LAB

STATE_ROOT = Path("/var/lib/freehold-lab")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
APT_PROXY_PORT = 3142


def lab_tag(name: str) -> str:
    """A short tag for names limited to 15 characters (network interfaces)."""
    if len(name) <= 11:
        return name
    return name[:6] + hashlib.sha1(name.encode()).hexdigest()[:5]


@dataclass(frozen=True)
class LabSite:
    name: str
    index: int
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address   # the router's address in the site (.1)
    bridge: str                      # bridge name inside the router namespace


@dataclass(frozen=True)
class LabServer:
    name: str
    index: int
    site: str
    address: ipaddress.IPv4Address
    prefixlen: int
    gateway: ipaddress.IPv4Address
    netns: str
    port: str                        # its veth end on the site bridge (router namespace):
                                     # named after its address, so adding servers to a spec
                                     # (which moves their indexes) never renames a running one
    machine: str                     # systemd-nspawn machine name
    roles: tuple[str, ...]


@dataclass
class LabPlan:
    name: str
    spec_path: str
    network: ipaddress.IPv4Network
    sites: list[LabSite]
    servers: list[LabServer]
    latency_ms: dict[tuple[str, str], float]     # RTT per unordered site pair, both orders
    tag: str = ""
    transit: ipaddress.IPv4Network = field(default=ipaddress.IPv4Network("0.0.0.0/30"))

    # ---- names -----------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"fh{self.tag}-"

    @property
    def router_ns(self) -> str:
        return f"{self.prefix}router"

    @property
    def host_link(self) -> str:
        return f"{self.prefix}h"

    @property
    def nft_table(self) -> str:
        return f"fh{self.tag}"

    @property
    def host_transit(self) -> ipaddress.IPv4Address:
        return self.transit.network_address + 1

    @property
    def router_transit(self) -> ipaddress.IPv4Address:
        return self.transit.network_address + 2

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.name

    def server_dir(self, server: str) -> Path:
        return self.state_dir / "servers" / server

    def cgroup_dirs(self, server: str | None = None) -> list[Path]:
        rel = Path("freehold-lab") / self.name
        if server:
            rel = rel / server
        return [root / rel for root in CGROUP_ROOTS]

    def server(self, name: str) -> LabServer:
        for s in self.servers:
            if s.name == name:
                return s
        raise LabError(f"no server {name!r} in lab {self.name}: one of "
                       f"{', '.join(s.name for s in self.servers)}")

    def site(self, name: str) -> LabSite:
        for s in self.sites:
            if s.name == name:
                return s
        raise LabError(f"no site {name!r} in lab {self.name}: one of "
                       f"{', '.join(s.name for s in self.sites)}")

    def resolve(self, target: str) -> list[LabServer]:
        """A site name or a server name -> its servers."""
        if any(s.name == target for s in self.sites):
            return [s for s in self.servers if s.site == target]
        if any(s.name == target for s in self.servers):
            return [self.server(target)]
        raise LabError(f"{target!r} is neither a site nor a server of lab {self.name}")

    def latency(self, a: str, b: str) -> float:
        return 0.0 if a == b else self.latency_ms.get((a, b), 0.0)


def port_name(address: ipaddress.IPv4Address) -> str:
    """A server's veth name in the router namespace: `v` + its address in hex (9 characters,
    within the 15 an interface name allows; unique, as addresses are within a lab)."""
    return f"v{int(address):08x}"


def plan_lab(spec: ClusterSpec) -> LabPlan:
    """Derive the lab from a spec; LabError (one line per problem, joined) when it cannot be."""
    network = spec.lab.network if spec.lab else DEFAULT_LAB
    problems: list[str] = []
    sites: list[LabSite] = []
    for i, site in enumerate(spec.sites):
        members = spec.servers_in_site(site.name)
        if site.network is not None:
            net = site.network
        elif members:
            net = ipaddress.IPv4Network(f"{members[0].private_address}/24", strict=False)
        else:
            problems.append(f"sites.{site.name}.network: not given and no server to derive it "
                            "from — add `network: <a /24 inside lab.network>`")
            continue
        if not net.subnet_of(network):
            problems.append(f"sites.{site.name}.network: {net} is outside lab.network {network}"
                            " — pick a subnet of lab.network")
        if net.num_addresses < 4:
            problems.append(f"sites.{site.name}.network: {net} is too small — use a /24")
        sites.append(LabSite(site.name, i, net, net.network_address + 1, f"br{i}"))
    for a in sites:
        for b in sites:
            if a.index < b.index and a.network.overlaps(b.network):
                problems.append(f"sites.{b.name}.network: {b.network} overlaps site {a.name} "
                                f"({a.network}) — give each site its own subnet")
    transit = _transit(network, [s.network for s in sites])
    if transit is None:
        problems.append(f"lab.network: {network} has no free /30 left for the router uplink "
                        "— widen lab.network")
    by_site = {s.name: s for s in sites}
    tag = lab_tag(spec.name)
    servers: list[LabServer] = []
    seen: dict[str, str] = {}
    for i, srv in enumerate(spec.servers):
        site = by_site.get(srv.site)
        if site is None:
            continue
        addr = ipaddress.IPv4Address(srv.private_address)
        if addr not in site.network or addr in (site.network.network_address, site.gateway,
                                                site.network.broadcast_address):
            problems.append(f"servers.{srv.name}.address: {addr} is not a usable host address "
                            f"of site {site.name} ({site.network}; .1 is the lab router) — use "
                            f"{site.network.network_address + 10} and up")
        if str(addr) in seen:
            problems.append(f"servers.{srv.name}.address: {addr} already used by "
                            f"{seen[str(addr)]} — give each server its own address")
        seen[str(addr)] = srv.name
        servers.append(LabServer(
            name=srv.name, index=i, site=site.name, address=addr,
            prefixlen=site.network.prefixlen, gateway=site.gateway,
            netns=f"fh{tag}-{srv.name}", port=port_name(addr), machine=f"fh{tag}-{srv.name}",
            roles=tuple(srv.roles)))
    latency: dict[tuple[str, str], float] = {}
    for site in spec.sites:
        for other, ms in site.latency_ms.items():
            latency[(site.name, other)] = latency[(other, site.name)] = float(ms)
    if problems:
        raise LabError("\n".join(f"{spec.path}: {p}" for p in problems))
    assert transit is not None
    return LabPlan(name=spec.name, spec_path=spec.path, network=network, sites=sites,
                   servers=servers, latency_ms=latency, tag=tag, transit=transit)


def _transit(network: ipaddress.IPv4Network, used: list[ipaddress.IPv4Network]
             ) -> ipaddress.IPv4Network | None:
    """The last /30 of the lab network that no site uses: the host <-> router link."""
    if network.prefixlen > 30:
        return None
    last = ipaddress.IPv4Network(f"{network.broadcast_address - 3}/30")
    for cand in (last, ipaddress.IPv4Network(f"{network.network_address}/30")):
        if not any(cand.overlaps(u) for u in used):
            return cand
    return None
