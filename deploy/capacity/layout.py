"""Where the plan puts servers: the profile's providers and sites, and spreading counts over them.

`n_plus_one(n, sites)`: the fewest servers that, spread evenly over the sites, still leave `n`
after the site holding the most is lost. `distribute(n, order)`: round-robin counts per site.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.deploy.capacity.inputs import CapacityProfileError

KINDS = ("owned", "rented", "cloud")


@dataclass
class SiteLayout:
    name: str
    provider: str
    network: ipaddress.IPv4Network
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Layout:
    providers: list[tuple[str, str]]  # (name, kind)
    sites: list[SiteLayout]
    primary_site: str
    standby_site: str

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    def provider_of(self, site: str) -> str:
        return next(s.provider for s in self.sites if s.name == site)

    def interleaved(self) -> list[str]:
        """Sites in round-robin order over providers (spec order within a provider), so that
        spreading counts in this order gives every provider its share before any site a second
        server."""
        queues: dict[str, list[str]] = {}
        for s in self.sites:
            queues.setdefault(s.provider, []).append(s.name)
        out: list[str] = []
        depth = 0
        while len(out) < len(self.sites):
            out += [q[depth] for q in queues.values() if depth < len(q)]
            depth += 1
        return out


def n_plus_one(n: int, sites: int) -> int:
    """Fewest servers, spread evenly over `sites`, that leave `n` when the biggest site is lost
    (n itself with a single site: nothing can survive its loss)."""
    if n <= 0:
        return 0
    if sites <= 1:
        return n
    total = n
    while total - math.ceil(total / sites) < n:
        total += 1
    return total


def distribute(n: int, order: list[str], start: int = 0) -> dict[str, int]:
    """`n` servers over the sites in `order`, round-robin from `order[start]`."""
    counts = {s: 0 for s in order}
    for i in range(n):
        counts[order[(start + i) % len(order)]] += 1
    return counts


def read_layout(doc: Mapping[str, Any], profile: Path) -> Layout:
    raw = doc.get("layout")
    if not isinstance(raw, Mapping):
        raise CapacityProfileError(f"{profile}: layout: missing — add providers and sites "
                                   "(where --emit-spec puts servers)")
    provs = raw.get("providers")
    if not isinstance(provs, list) or not provs:
        raise CapacityProfileError(f"{profile}: layout.providers: missing — list "
                                   "{name, kind: owned|rented|cloud}")
    providers: list[tuple[str, str]] = []
    for i, p in enumerate(provs):
        if not isinstance(p, Mapping) or not p.get("name") or p.get("kind") not in KINDS:
            raise CapacityProfileError(f"{profile}: layout.providers[{i}]: expected {{name, "
                                       "kind: owned|rented|cloud}}")
        providers.append((str(p["name"]), str(p["kind"])))
    names = {n for n, _ in providers}
    sites_raw = raw.get("sites")
    if not isinstance(sites_raw, list) or not sites_raw:
        raise CapacityProfileError(f"{profile}: layout.sites: missing — list {{name, provider,"
                                   " network}}")
    sites: list[SiteLayout] = []
    for i, s in enumerate(sites_raw):
        where = f"layout.sites[{i}]"
        if not isinstance(s, Mapping) or not s.get("name"):
            raise CapacityProfileError(f"{profile}: {where}.name: missing")
        if s.get("provider") not in names:
            raise CapacityProfileError(f"{profile}: {where}.provider: {s.get('provider')!r} is "
                                       f"not a layout provider — use one of {', '.join(names)}")
        try:
            net = ipaddress.IPv4Network(str(s.get("network") or f"10.{i + 1}.0.0/16"))
        except ValueError as exc:
            raise CapacityProfileError(f"{profile}: {where}.network: {exc} — give a /16 such "
                                       "as 10.1.0.0/16") from exc
        if net.prefixlen > 20:
            raise CapacityProfileError(f"{profile}: {where}.network: {net} is too small — give "
                                       "a /20 or larger (a /24 per role block)")
        sites.append(SiteLayout(str(s["name"]), str(s["provider"]), net,
                              dict(s.get("latency_ms") or {})))
    site_names = [s.name for s in sites]
    pg = raw.get("postgres") if isinstance(raw.get("postgres"), Mapping) else {}
    primary = str(pg.get("primary_site") or site_names[0])
    if primary not in site_names:
        raise CapacityProfileError(f"{profile}: layout.postgres.primary_site: unknown site "
                                   f"{primary!r} — use one of {', '.join(site_names)}")
    prim_provider = next(s.provider for s in sites if s.name == primary)
    default_standby = next((s.name for s in sites if s.provider != prim_provider),
                           next((n for n in site_names if n != primary), primary))
    standby = str(pg.get("standby_site") or default_standby)
    if standby not in site_names:
        raise CapacityProfileError(f"{profile}: layout.postgres.standby_site: unknown site "
                                   f"{standby!r} — use one of {', '.join(site_names)}")
    return Layout(providers, sites, primary, standby)
