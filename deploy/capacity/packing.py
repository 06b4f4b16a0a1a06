"""Packing a plan onto fewer servers: several Redis nodes per server, light roles co-located.

Redis (a node is single-threaded): a server carries k nodes, k limited by its cores
(`redis_cores_per_node` each), its memory (k x the node's share of the data within
`redis_memory_fraction` of the RAM) and its network (after the biggest site is lost, the
surviving servers carry the whole Redis traffic within `redis_utilisation` of their NIC). The
fewest servers whose layout — computed by the placement rules themselves
(deploy/spec/placement.py: masters spread, a replica never on its master's server nor in its
site) — keeps every shard and a master majority after losing any one site and any one provider.

Co-location (each stated in the plan with its reason): the fan-out worker on the app servers
when its measured CPU fits them without one more server; pgbouncer on the load balancers (its
router already sends the database traffic beside HAProxy); etcd members on the light servers
(monitoring, dns) of distinct sites, when they keep quorum through any site or provider loss.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from freehold.deploy.capacity.inputs import ServerClass
from freehold.deploy.capacity.layout import Layout, distribute

GIB = 2**30
MAX_REDIS_SERVERS = 500  # the search below stops here (a plan that needs more says so)


@dataclass(frozen=True)
class RedisPack:
    masters: int
    replicas: int
    servers: int
    nodes_per_server: int
    per_site: dict[str, int]
    node_gib: float          # the data one master holds
    limits: dict[str, int]   # nodes per server allowed by cores, memory, network
    net_gbit_after_loss: float | None  # per surviving server, biggest site lost
    why: str                 # why fewer servers do not do


def _spec_doc(lay: Layout, per_site: dict[str, int], masters: int, replicas: int, k: int
              ) -> dict[str, Any]:
    servers = []
    for site in lay.sites:
        base = site.network.network_address
        for i in range(per_site.get(site.name, 0)):
            servers.append({"name": f"{site.name}-redis-{i + 1:02d}", "site": site.name,
                            "address": str(base + 256 + 10 + i), "roles": ["redis"]})
    return {"name": "redis-pack",
            "providers": [{"name": p, "kind": kind} for p, kind in lay.providers],
            "sites": [{"name": s.name, "provider": s.provider, "network": str(s.network)}
                      for s in lay.sites],
            "roles": {"redis": {"masters": masters, "replicas": replicas,
                                "nodes_per_server": k}},
            "servers": servers}


@functools.lru_cache(maxsize=4096)
def _layout(lay_key: tuple[Any, ...], per_site: tuple[tuple[str, int], ...], masters: int,
            replicas: int, k: int) -> tuple[list[str], dict[frozenset[str], list[str]]]:
    """The Redis layout the placement rules make (deploy/spec/placement.redis_layout) for these
    servers: (its errors, {lost sites: why that loss is not survived}) for every site and
    every provider. Cached: a --min-servers search asks for the same layouts again."""
    from freehold.deploy.spec import parse_spec
    from freehold.deploy.spec.placement import redis_layout

    lay = _LAYOUTS[lay_key]
    spec = parse_spec(_spec_doc(lay, dict(per_site), masters, replicas, k))
    shards = redis_layout(spec)
    errors = []
    if len(shards) < 3:
        errors.append(f"redis: {len(shards)} master(s), Redis Cluster needs 3")
    for sh in shards:
        if len(sh.replicas) < replicas:
            errors.append(f"redis: shard {sh.index} has {len(sh.replicas)} of {replicas} "
                          "replica(s)")
        for r in sh.replicas:
            if r.name == sh.master.name or (r.site == sh.master.site and len(lay.sites) > 1):
                errors.append(f"redis: shard {sh.index} replica {r.label} is on its master "
                              f"{sh.master.label}'s " + ("server" if r.name == sh.master.name
                                                         else "site"))
    losses: dict[frozenset[str], list[str]] = {}
    for lost in [{s.name} for s in lay.sites] + [
            {s.name for s in lay.sites if s.provider == p} for p, _ in lay.providers]:
        why = []
        left = sum(1 for sh in shards if sh.master.site not in lost)
        if left * 2 <= len(shards):
            why.append(f"redis loses its master majority ({left}/{len(shards)} masters left, "
                       "no failover vote)")
        why += [f"redis shard {sh.index} loses every copy" for sh in shards
                if all(n.site in lost for n in sh.nodes)]
        losses[frozenset(lost)] = why
    return errors, losses


_LAYOUTS: dict[tuple[Any, ...], Layout] = {}


def _key(lay: Layout) -> tuple[Any, ...]:
    key = (tuple(lay.providers), tuple((s.name, s.provider, str(s.network)) for s in lay.sites))
    _LAYOUTS.setdefault(key, lay)
    return key


def redis_layout_problems(lay: Layout, per_site: dict[str, int], masters: int, replicas: int,
                          k: int) -> list[str]:
    """What the placement rules say against this Redis layout: its errors, and each site or
    provider whose loss it does not survive ([] = a valid layout). With fewer than 3 sites
    (providers) one of them holds half the masters whatever the layout: such a loss cannot
    be survived, and the plan's notes say so — not counted here."""
    errors, losses = _layout(_key(lay), tuple(sorted(per_site.items())), masters, replicas, k)
    found = list(errors)
    for kind, n in (("site", len(lay.sites)), ("provider", len(lay.providers))):
        if n < 3:
            continue
        names = [s.name for s in lay.sites] if kind == "site" else [p for p, _ in lay.providers]
        for name in names:
            lost = {name} if kind == "site" else \
                {s.name for s in lay.sites if s.provider == name}
            found += [f"losing {kind} {name}: {r}" for r in losses[frozenset(lost)]]
    return found


def redis_lost_reasons(lay: Layout, per_site: dict[str, int], masters: int, replicas: int,
                       k: int, lost_sites: set[str]) -> list[str]:
    """Why this Redis layout does not survive losing `lost_sites` ([] = it does)."""
    _, losses = _layout(_key(lay), tuple(sorted(per_site.items())), masters, replicas, k)
    return losses[frozenset(lost_sites)]


def pack_redis(lay: Layout, cls: ServerClass, masters_needed: int, replicas: int,
               redis_bytes: float, net_bytes_s: float, v: Any) -> RedisPack:
    """The fewest redis servers (and nodes per server) for `masters_needed` shards."""
    per_node_cores = v("redis_cores_per_node")
    usable = cls.ram_gib * GIB * v("redis_memory_fraction")
    by_cores = max(1, int(cls.cores // per_node_cores))
    nodes = masters_needed * (1 + replicas)
    order = lay.interleaved()
    why: list[str] = []
    fallback: RedisPack | None = None
    first = max(2 if len(lay.sites) > 1 else 1, math.ceil(nodes / by_cores))
    # one node per server (the most servers worth trying) plus a round of sites to spread them
    for servers in range(first, min(MAX_REDIS_SERVERS, nodes + len(lay.sites)) + 1):
        k = math.ceil(nodes / servers)
        masters = max(masters_needed, servers * k // (1 + replicas))
        node_bytes = redis_bytes / masters
        by_memory = max(0, int(usable // node_bytes)) if node_bytes else by_cores
        per_site = distribute(servers, order)
        biggest = max(per_site.values())
        left = servers - biggest if len(lay.sites) > 1 else servers
        net_after = (net_bytes_s * 8 / 1e9 / left) if left else None
        share = cls.network_gbit * v("redis_utilisation") if cls.network_gbit else None
        by_net = k if share is None or (net_after is not None and net_after <= share) else 0
        limits = {"cores": by_cores, "memory": by_memory}
        if share is not None:
            limits["network"] = by_net
        if k > min(limits.values()):
            why.append(f"{servers} servers x {k} nodes: over the "
                       + ", ".join(n for n, lim in limits.items() if k > lim))
            continue
        problems = redis_layout_problems(lay, per_site, masters, replicas, k)
        pack = RedisPack(masters, replicas, servers, k, per_site, node_bytes / GIB, limits,
                         net_after, "; ".join(why[-2:]))
        if not problems:
            return pack
        why.append(f"{servers} servers x {k} nodes: {problems[0]}")
        if fallback is None and not [p for p in problems if not p.startswith("losing ")]:
            fallback = pack
    if fallback is not None:  # valid, but no layout survives every loss: said in the losses
        return RedisPack(fallback.masters, replicas, fallback.servers,
                         fallback.nodes_per_server, fallback.per_site, fallback.node_gib,
                         fallback.limits, fallback.net_gbit_after_loss,
                         f"NO layout up to here survives every site and provider loss "
                         f"({why[-1]}); the fewest valid servers kept")
    raise ValueError(f"redis: no layout of {masters_needed} shards on up to "
                     f"{min(MAX_REDIS_SERVERS, nodes + len(lay.sites))} servers "
                     f"({why[-1] if why else 'none tried'}) — add sites or providers, or "
                     "bigger servers")


@dataclass(frozen=True)
class Hosting:
    """Where a co-located role runs: per host role, how many of its servers per site."""

    on: dict[str, dict[str, int]]
    why: str


def etcd_hosts(members: int, lay: Layout, light: dict[str, dict[str, int]]
               ) -> dict[str, dict[str, int]] | None:
    """etcd members on the light servers (`light`: role -> servers per site), one site after
    another in the layout's round-robin order (so members sit in as many sites as the light
    servers allow); None when there are too few light servers or when the spread leaves a site
    or a provider holding half the members (quorum lost with it)."""
    free = {role: dict(per_site) for role, per_site in light.items()}
    on: dict[str, dict[str, int]] = {role: {} for role in light}
    per_site: dict[str, int] = {}
    placed, rounds = 0, 0
    while placed < members and rounds < members + 1:
        rounds += 1
        for site in lay.interleaved():
            if placed == members:
                break
            host = next((r for r in light if free[r].get(site, 0) > 0), None)
            if host is None:
                continue
            free[host][site] -= 1
            on[host][site] = on[host].get(site, 0) + 1
            per_site[site] = per_site.get(site, 0) + 1
            placed += 1
    if placed < members:
        return None
    per_provider: dict[str, int] = {}
    for site, n in per_site.items():
        per_provider[lay.provider_of(site)] = per_provider.get(lay.provider_of(site), 0) + n
    if len(lay.sites) > 1 and max([*per_site.values(), *per_provider.values()]) * 2 >= members:
        return None
    return {role: counts for role, counts in on.items() if counts}
