"""Placement rules and the survival analysis: which single site or provider can be lost.

Survival rule (exact; `survival()` implements it, `lost_reasons()` for any set of lost servers).
After removing every server of the lost site/provider, the cluster survives when all hold:

- etcd: strictly more than half of the etcd members are left (raft quorum).
- postgres (Patroni): etcd keeps quorum (Patroni holds its leader key there) and ≥ 1 member is
  left; and the primary site and the synchronous-standby site are not both lost (Patroni in
  synchronous mode only promotes the synchronous standby: with both gone it promotes nobody,
  and the last acknowledged commits may exist nowhere else).
- redis (Redis Cluster): every shard keeps ≥ 1 node (its master or a replica: its slots stay
  served), and strictly more than half of the masters are left — a replica is promoted only by
  the votes of a majority of the masters, so losing half or more of them leaves the lost
  shards' slots unserved (cluster_state:fail).
- media (SeaweedFS): strictly more than half of the masters are left (raft), ≥ 1 volume
  server is left, and lost volume servers sit in fewer failure domains than a volume has copies
  (`roles.media.copies`, default 2, each copy in a different domain: the provider when media
  spans that many providers, else the site — see `media_failure_domain`), so every volume
  keeps a copy whatever SeaweedFS placed where.
- backup: ≥ 1 backup server left.
- serving roles lb, app, worker, pgbouncer, dns: ≥ 1 server of each role the spec has is left.

DNS placement (`_check_dns`): at least 3 dns servers in at least 2 providers, so that no single
provider (a cloud host dropping the platform) takes the platform's name with it, and a zone
(`roles.dns.zone`) for them to serve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from freehold.deploy.spec.models import ClusterSpec, Server

SERVING_ROLES = ("lb", "app", "worker", "pgbouncer", "dns")
DNS_MIN_SERVERS = 3
DNS_MIN_PROVIDERS = 2
CORE_ROLES = ("etcd", "postgres", "redis", "lb", "app", "worker", "media")


@dataclass(frozen=True, eq=False)
class RedisNode:
    """One Redis node: the `slot`-th (0, 1, …) of the `roles.redis.nodes_per_server` nodes on
    its server (roles/redis runs slot k on port 6379 + k). Reads like its Server (name, site,
    provider, mesh_address, … are the server's), so rules about servers apply to its nodes."""

    server: Server
    slot: int = 0

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RedisNode) and other.server.name == self.server.name
                and other.slot == self.slot)

    def __hash__(self) -> int:
        return hash((self.server.name, self.slot))

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def site(self) -> str:
        return self.server.site

    @property
    def provider(self) -> str:
        return self.server.provider

    @property
    def mesh_address(self) -> str:
        return self.server.mesh_address

    @property
    def label(self) -> str:
        """The server's name for its first node, `NAME+k` for the k-th extra one."""
        return self.server.name if self.slot == 0 else f"{self.server.name}+{self.slot}"

    def __getattr__(self, attr: str) -> Any:  # any other Server attribute: the server's
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.server, attr)


@dataclass
class RedisShard:
    index: int
    master: RedisNode
    replicas: list[RedisNode] = field(default_factory=list)

    @property
    def nodes(self) -> list[RedisNode]:
        return [self.master, *self.replicas]


def _site_order(spec: ClusterSpec) -> dict[str, int]:
    return {s.name: i for i, s in enumerate(spec.sites)}


def spread(spec: ClusterSpec, servers: list[Any], n: int) -> list[Any]:
    """Pick `n` of `servers` spread as evenly as possible: round-robin over providers, and
    within a provider round-robin over its sites (spec order throughout), so that no provider
    and no site holds more than its share."""
    order = _site_order(spec)
    by_provider: dict[str, dict[str, list[Any]]] = {}
    for s in sorted(servers, key=lambda s: order.get(s.site, 0)):
        by_provider.setdefault(s.provider, {}).setdefault(s.site, []).append(s)
    queues = [_round_robin(list(sites.values())) for sites in by_provider.values()]
    return _round_robin(queues)[:n]


def _round_robin(queues: list[list[Any]]) -> list[Any]:
    out: list[Any] = []
    depth = 0
    while any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out


def _match(shards: list[RedisShard], pool: list[RedisNode], order: dict[str, int]
           ) -> dict[int, RedisNode]:
    """Give each shard one more node from `pool`, as a maximum matching (Kuhn's augmenting
    paths) run level by level: at level 2 a node fits a shard when neither its provider nor its
    site holds a node of the shard yet, at level 1 when its site does not, at level 0 when it
    is outside the master's site, at level -1 when no server of the shard holds it. A shard
    matched at a stricter level stays matched when the next level's augmenting paths reroute
    it, so every shard that can get a node in a new site does, and as many as possible get
    one at a new provider. Candidates are tried in a fixed order (other provider first, then
    the next site after the master's), so the result is deterministic."""
    n_sites = max(len(order), 1)

    def fits(shard: RedisShard, s: RedisNode, level: int) -> bool:
        if level >= 2 and s.provider in {n.provider for n in shard.nodes}:
            return False
        if level >= 1:
            return s.site not in {n.site for n in shard.nodes}
        if level >= 0:
            return s.site != shard.master.site
        return s.name not in {n.name for n in shard.nodes}

    def rank(shard: RedisShard, s: RedisNode) -> tuple[bool, int]:
        start = order.get(shard.master.site, 0)
        return (s.provider in {n.provider for n in shard.nodes},
                (order.get(s.site, 0) - start) % n_sites)

    owner: dict[RedisNode, int] = {}  # node -> shard index
    by_index = {sh.index: sh for sh in shards}
    for level in (2, 1, 0, -1):
        cands = {sh.index: sorted((s for s in pool if fits(sh, s, level)),
                                  key=lambda s, sh=sh: rank(sh, s)) for sh in shards}

        def augment(idx: int, seen: set[RedisNode],
                    cands: dict[int, list[RedisNode]] = cands) -> bool:
            for node in cands[idx]:
                if node in seen:
                    continue
                seen.add(node)
                if node not in owner or augment(owner[node], seen):
                    owner[node] = idx
                    return True
            return False

        matched = set(owner.values())
        for idx in by_index:
            if idx not in matched:
                augment(idx, set())
    return {idx: node for node, idx in owner.items()}


def redis_nodes_per_server(spec: ClusterSpec) -> int:
    """`roles.redis.nodes_per_server` (default 1)."""
    return int(spec.role_settings("redis").get("nodes_per_server") or 1)


def redis_nodes(spec: ClusterSpec) -> list[RedisNode]:
    """Every Redis node of the spec: each server's first node, then each one's second, …"""
    servers = spec.servers_with_role("redis")
    return [RedisNode(s, k) for k in range(redis_nodes_per_server(spec)) for s in servers]


def redis_settings(spec: ClusterSpec) -> tuple[int, int]:
    """(masters, replicas per master) for the spec's redis nodes."""
    nodes = redis_nodes(spec)
    settings = spec.role_settings("redis")
    replicas = int(settings.get("replicas", 1))
    masters = int(settings.get("masters") or max(1, len(nodes) // (1 + replicas)))
    return min(masters, len(nodes)), replicas


def redis_layout(spec: ClusterSpec) -> list[RedisShard]:
    """Redis Cluster shards over the nodes (`roles.redis.nodes_per_server` per server):
    masters spread over providers and sites (and a site's servers before a second node of
    one); each replica goes, by a maximum matching (so a valid layout is found whenever one
    exists), preferably to a provider and site its shard has no node in yet, else to a new
    site, else outside the master's site, else to a server of its own (the placement rules
    flag those), else anywhere; nodes beyond masters × (1 + replicas) become extra replicas.
    Deterministic."""
    nodes = redis_nodes(spec)
    if not nodes:
        return []
    n_masters, replicas = redis_settings(spec)
    order = _site_order(spec)
    masters = spread(spec, nodes, n_masters)
    shards = [RedisShard(i, m) for i, m in enumerate(masters)]
    pool = [s for s in nodes if s not in masters]
    for r in range(replicas):
        got = _match(shards, pool, order)
        for idx, node in got.items():
            shards[idx].replicas.append(node)
            pool.remove(node)
        # no node off the shard's servers left: any node (the placement rules flag it)
        for sh in shards:
            if len(sh.replicas) <= r and pool:
                sh.replicas.append(pool.pop(0))
    while pool:  # extra nodes: to the shard with fewest replicas, outside its master's site
        node = pool.pop(0)
        fits = ([sh for sh in shards if sh.master.site != node.site]
                or [sh for sh in shards if node.name not in {n.name for n in sh.nodes}]
                or shards)
        min(fits, key=lambda sh: (len(sh.replicas), sh.index)).replicas.append(node)
    return shards


def media_masters(spec: ClusterSpec) -> list[Server]:
    """SeaweedFS masters: `roles.media.masters` (default 3, or 1 with fewer than 3 media
    servers), spread over providers and sites."""
    media = spec.servers_with_role("media")
    default = 3 if len(media) >= 3 else min(1, len(media))
    n = int(spec.role_settings("media").get("masters") or default)
    return spread(spec, media, n)


def media_copies(spec: ClusterSpec) -> int:
    """Copies of every media volume (`roles.media.copies`, default 2)."""
    return int(spec.role_settings("media").get("copies", 2))


def media_failure_domain(spec: ClusterSpec) -> str:
    """"provider" when the media servers span at least `copies` providers, else "site".
    The media role runs SeaweedFS volume servers with -dataCenter set to this attribute and
    -rack to the site, and replication so that copies sit in distinct data centers; the
    survival rule assumes exactly that."""
    providers = {s.provider for s in spec.servers_with_role("media")}
    return "provider" if len(providers) >= media_copies(spec) else "site"


def postgres_primary_site(spec: ClusterSpec) -> str | None:
    """`roles.postgres.primary_site`, else the site of the first postgres member."""
    members = spec.servers_with_role("postgres")
    given = spec.role_settings("postgres").get("primary_site")
    if given:
        return str(given)
    return members[0].site if members else None


def postgres_standby_site(spec: ClusterSpec) -> str | None:
    """`roles.postgres.standby_site`, else the site of the first member outside the primary's."""
    given = spec.role_settings("postgres").get("standby_site")
    if given:
        return str(given)
    primary = postgres_primary_site(spec)
    for s in spec.servers_with_role("postgres"):
        if s.site != primary:
            return s.site
    return None


def _sites_of(servers: Iterable[Server]) -> list[str]:
    return sorted({s.site for s in servers})


def check_placement(spec: ClusterSpec) -> tuple[list[str], list[str]]:
    """The placement rules. Returns (errors, warnings), one line each. A spec with a single
    site cannot spread over sites: there the spreading rules are warnings (and it survives
    no site loss); with two or more sites they are errors."""
    errors: list[str] = []
    warnings: list[str] = []
    multi = len(spec.sites) > 1
    spread_problem = errors if multi else warnings
    have = {role: spec.servers_with_role(role) for role in CORE_ROLES}

    etcd = have["etcd"]
    if etcd:
        sites = _sites_of(etcd)
        if len(etcd) < 3 or len(etcd) % 2 == 0:
            errors.append(f"etcd: {len(etcd)} members — run an odd number, at least 3 "
                          "(3 or 5)")
        if len(sites) < 3:
            spread_problem.append(f"etcd: members in {len(sites)} site(s) ({', '.join(sites)})"
                                  " — spread them over at least 3 sites (a small tie-breaker"
                                  " server is enough)")
        site, most = Counter(s.site for s in etcd).most_common(1)[0]
        if multi and len(sites) >= 3 and most * 2 >= len(etcd):
            errors.append(f"etcd: site {site} holds {most} of {len(etcd)} members — losing it "
                          "loses quorum; move members to other sites")
    elif have["postgres"]:
        errors.append("etcd: no member, but Patroni (postgres) keeps its leader key in etcd —"
                      " give 3 servers in 3 sites the etcd role")

    pg = have["postgres"]
    if pg:
        primary, standby = postgres_primary_site(spec), postgres_standby_site(spec)
        sites = _sites_of(pg)
        if len(pg) < 2:
            spread_problem.append("postgres: 1 member — add a synchronous standby in another "
                                  "site")
        if len(sites) < 2:
            spread_problem.append(f"postgres: members only in site {sites[0]} — put Patroni "
                                  "members in at least 2 sites")
        if primary not in sites:
            errors.append(f"postgres: primary_site {primary} has no postgres member — add one "
                          "there or change roles.postgres.primary_site")
        if standby is None:
            if len(pg) >= 2:
                spread_problem.append(f"postgres: no member outside the primary site {primary}"
                                      " for the synchronous standby — add one in another site")
        elif standby == primary:
            spread_problem.append(f"postgres: standby_site {standby} is the primary's site — "
                                  "set roles.postgres.standby_site to another site")
        elif standby not in sites:
            errors.append(f"postgres: standby_site {standby} has no postgres member — add one "
                          "there or change roles.postgres.standby_site")

    _check_redis(spec, errors, spread_problem)
    k = redis_nodes_per_server(spec)
    crowded = [s.name for s in spec.servers_with_role("redis") if k * 2 > s.cores]
    if k > 1 and crowded:
        warnings.append(f"redis: {k} nodes per server on {len(crowded)} server(s) with fewer "
                        f"than {2 * k} cores ({', '.join(crowded[:3])}"
                        f"{', …' if len(crowded) > 3 else ''}) — a single-threaded node wants a "
                        "core pair: lower roles.redis.nodes_per_server")
    _check_lb(spec, errors)
    _check_media(spec, errors, spread_problem)
    _check_dns(spec, errors)

    for role in CORE_ROLES:
        if not have[role]:
            warnings.append(f"{role}: no server has this role — the platform needs it")
    monitoring = spec.servers_with_role("monitoring")
    if len(monitoring) < 2:
        warnings.append(f"monitoring: {len(monitoring)} server(s) — run two, in different sites")
    if not spec.servers_with_role("backup"):
        warnings.append("backup: no server has this role — give one the backup role")
    return errors, warnings


def _check_redis(spec: ClusterSpec, errors: list[str], spread_problem: list[str]) -> None:
    shards = redis_layout(spec)
    if not shards:
        return
    _, replicas = redis_settings(spec)
    if len(shards) < 3:
        errors.append(f"redis: {len(shards)} master(s) — Redis Cluster needs at least 3 "
                      "(give 3 × (1 + replicas) servers the redis role)")
    for sh in shards:
        if len(sh.replicas) < replicas:
            errors.append(f"redis: shard {sh.index} (master {sh.master.label}) has "
                          f"{len(sh.replicas)} of {replicas} replica(s) — add redis servers")
        for r in sh.replicas:
            if r.name == sh.master.name:
                errors.append(f"redis: shard {sh.index} replica {r.label} is on its master "
                              f"{sh.master.label}'s server — add redis servers or lower "
                              "roles.redis.nodes_per_server")
            elif r.site == sh.master.site:
                spread_problem.append(f"redis: shard {sh.index} replica {r.label} is in its "
                                      f"master {sh.master.label}'s site {r.site} — add redis "
                                      "servers in other sites")


def _check_lb(spec: ClusterSpec, errors: list[str]) -> None:
    serving = _sites_of([*spec.servers_with_role("lb"), *spec.servers_with_role("app")])
    lbs = Counter(s.site for s in spec.servers_with_role("lb"))
    for site in serving:
        if lbs[site] < 2:
            errors.append(f"lb: serving site {site} has {lbs[site]} load balancer(s) — give 2 "
                          "servers there the lb role (keepalived pair)")


def _check_media(spec: ClusterSpec, errors: list[str], spread_problem: list[str]) -> None:
    media = spec.servers_with_role("media")
    if not media:
        return
    n = int(spec.role_settings("media").get("masters") or 0)
    if n > len(media):
        errors.append(f"media: roles.media.masters is {n} but only {len(media)} media servers "
                      "— lower it or add media servers")
    masters = media_masters(spec)
    if len(masters) % 2 == 0:
        errors.append(f"media: {len(masters)} SeaweedFS masters — run an odd number (1, 3, 5)")
    if len(spec.sites) > 1 and len(masters) > 1 and len(masters) % 2:
        site, most = Counter(s.site for s in masters).most_common(1)[0]
        if most * 2 >= len(masters):
            errors.append(f"media: site {site} holds {most} of {len(masters)} SeaweedFS masters"
                          " — losing it loses quorum; put media servers in a third site")
    if len(_sites_of(media)) < 2:
        spread_problem.append("media: volume servers in one site — add media servers in "
                              "another site so every volume has a copy elsewhere")


def _check_dns(spec: ClusterSpec, errors: list[str]) -> None:
    dns = spec.servers_with_role("dns")
    if not dns:
        return
    if len(dns) < DNS_MIN_SERVERS:
        errors.append(f"dns: {len(dns)} server(s) — give at least {DNS_MIN_SERVERS} servers the "
                      "dns role (registrars want 2 name servers or more; 3 leave one to spare "
                      "while another is down)")
    providers = sorted({s.provider for s in dns})
    if len(providers) < DNS_MIN_PROVIDERS:
        errors.append(f"dns: every dns server is at provider {providers[0]} — put dns servers "
                      f"at {DNS_MIN_PROVIDERS} providers or more, so that losing one provider "
                      "does not take the platform's name with it")
    if not spec.role_settings("dns").get("zone"):
        errors.append("dns: roles.dns.zone is not set — give the platform's domain, e.g. "
                      "`roles: {dns: {zone: example.social}}`")


# ---- survival -------------------------------------------------------------------------

def lost_reasons(spec: ClusterSpec, lost: set[str]) -> list[str]:
    """Why the cluster does not survive losing the servers named in `lost` ([] = survives)."""
    reasons: list[str] = []
    if spec.servers and all(s.name in lost for s in spec.servers):
        return [f"every server is lost ({len(spec.servers)}/{len(spec.servers)})"]

    def left(servers: list[Server]) -> int:
        return sum(1 for s in servers if s.name not in lost)

    etcd = spec.servers_with_role("etcd")
    etcd_ok = True
    if etcd:
        k = left(etcd)
        etcd_ok = k * 2 > len(etcd)
        if not etcd_ok:
            reasons.append(f"etcd loses quorum ({k}/{len(etcd)} left)")

    pg = spec.servers_with_role("postgres")
    if pg:
        k = left(pg)
        lost_sites = {s.site for s in spec.servers if s.name in lost}
        live_sites = {s.site for s in spec.servers if s.name not in lost}
        gone = lost_sites - live_sites
        primary, standby = postgres_primary_site(spec), postgres_standby_site(spec)
        if k == 0:
            reasons.append(f"postgres loses every member (0/{len(pg)} left)")
        elif not etcd_ok:
            reasons.append("postgres cannot elect a primary (Patroni needs etcd quorum)")
        elif primary in gone and standby in gone and standby != primary:
            reasons.append(f"postgres loses primary site {primary} and synchronous standby "
                           f"site {standby} together (no promotable standby)")

    shards = redis_layout(spec)
    if shards:
        k = sum(1 for sh in shards if sh.master.name not in lost)
        if k * 2 <= len(shards):
            reasons.append(f"redis loses its master majority ({k}/{len(shards)} masters left, "
                           "no failover vote)")
        for sh in shards:
            if not left(sh.nodes):
                reasons.append(f"redis shard {sh.index} loses every copy "
                               f"({', '.join(s.name for s in sh.nodes)})")

    media = spec.servers_with_role("media")
    if media:
        masters = media_masters(spec)
        k = left(masters)
        if k * 2 <= len(masters):
            reasons.append(f"media (SeaweedFS) masters lose quorum ({k}/{len(masters)} left)")
        domain = media_failure_domain(spec)
        domains = {getattr(m, domain) for m in media}
        touched = sorted({getattr(m, domain) for m in media if m.name in lost})
        copies = min(media_copies(spec), len(domains))
        if not left(media):
            reasons.append(f"media loses every volume server (0/{len(media)} left)")
        elif len(touched) >= copies:
            reasons.append(f"media loses volume servers in {len(touched)} {domain}s "
                           f"({', '.join(touched)}): a volume's {copies} copies may all be there")

    for role in ("backup", *SERVING_ROLES):
        servers = spec.servers_with_role(role)
        if servers and not left(servers):
            reasons.append(f"{role}: no server left (0/{len(servers)})")
    return reasons


def survival(spec: ClusterSpec) -> dict[str, Any]:
    """For each single site and each single provider: does the cluster survive its loss?"""
    sites = {}
    for site in spec.sites:
        lost = {s.name for s in spec.servers if s.site == site.name}
        reasons = lost_reasons(spec, lost)
        sites[site.name] = {"ok": not reasons, "servers_lost": len(lost), "reasons": reasons}
    providers = {}
    for provider in spec.providers:
        lost = {s.name for s in spec.servers if s.provider == provider.name}
        reasons = lost_reasons(spec, lost)
        providers[provider.name] = {"ok": not reasons, "servers_lost": len(lost),
                                    "reasons": reasons}
    doc: dict[str, Any] = {
        "any_site": all(v["ok"] for v in sites.values()),
        "any_provider": all(v["ok"] for v in providers.values()),
        "sites": sites,
        "providers": providers,
    }
    doc["line"] = survival_line(doc)
    return doc


def survival_line(doc: dict[str, Any]) -> str:
    """`survives: any one site: yes; any one provider: no — provider X: etcd loses quorum …`"""
    parts = []
    for key, label, kind in (("sites", "any one site", "site"),
                             ("providers", "any one provider", "provider")):
        bad = [f"{kind} {name}: {', '.join(v['reasons'])}"
               for name, v in doc[key].items() if not v["ok"]]
        parts.append(f"{label}: yes" if not bad else f"{label}: no — " + "; ".join(bad))
    return "survives: " + "; ".join(parts)
