"""The capacity model: accounts -> daily actives -> peak requests/s -> servers per role.

With A accounts and the profile's inputs (names as in the profile):

    D  = A x dau_ratio                                            daily actives
    R  = D x requests per daily active per day / 86,400 x peak_to_average   peak req/s
    Rp = R x surge_peak_factor x headroom                         the load the plan carries
    app cores      = Rp / (app_rps_per_core x app_headroom)
    posts/s        = D x (post + reply + echo per day) / 86,400 x peak x surge x headroom
    fan-out/s      = posts/s x fanout_per_post;  worker cores = fan-out/s / (per core x util)
    redis cores    = Rp x redis_cpu_ms_per_request / 1000
                     + fan-out/s x redis_cpu_us_per_fanout_insert / 1e6      Redis CPU busy
    redis masters  = max(3, memory / (RAM x maxmemory share), redis cores / redis_utilisation)
                     memory = A x timeline_cached_ratio x timeline_bytes + D x bytes per DAU
                     (a Redis node is single-threaded: one master is one core)
    pg read cores  = Rp x pg_cpu_ms_per_request / 1000 / pg_utilisation
    lb cores       = Rp / (lb_rps_per_core x lb_utilisation)
and servers = ceil(cores / cores per server). Stateless roles (app, worker, lb) and the read
replicas are sized N+1 by site: spread evenly, they still carry the load after the biggest site
is lost. Storage grows with posts (and accounts at account_growth_per_month) over the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.deploy.capacity.inputs import (
    DEFAULT_PROFILE,
    CapacityProfileError,
    Input,
    ServerClass,
    app_inputs,
    capacity_inputs,
    read_doc,
    server_classes,
)
from freehold.deploy.capacity.layout import Layout, distribute, n_plus_one, read_layout
from freehold.deploy.capacity.losses import loss_lines, losses
from freehold.deploy.capacity.packing import etcd_hosts, pack_redis
from freehold.deploy.spec.placement import DNS_MIN_SERVERS
from freehold.loadgen.traffic import ACTION_REQUESTS, SECONDS_PER_DAY, ProfileError, load_model

DAYS_PER_MONTH = 30.44
WRITE_ACTIONS = ("post", "reply", "echo")
GIB = 2**30
ROLE_ORDER = ("app", "worker", "lb", "pgbouncer", "redis", "postgres", "etcd", "media",
              "backup", "monitoring", "dns", "loadgen")


@dataclass
class RoleNeed:
    role: str
    servers: int  # servers carrying the role (its own, or its hosts' when co-located)
    server_class: str
    per_site: dict[str, int]
    basis: str  # how the count was reached, one line
    on: dict[str, dict[str, int]] = field(default_factory=dict)  # host role -> per site
    why: str = ""  # the co-location's reason
    production: bool = True  # False: not part of production (the load generators)
    cores: float | None = None  # cores it needs at the planned peak (roles sized by load)
    nodes_per_server: int = 1  # Redis nodes on each of its servers
    masters: int = 0  # Redis masters (shards)

    @property
    def own(self) -> int:
        """Servers of its own in production (0 when co-located or not production)."""
        return self.servers if self.production and not self.on else 0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"servers": self.servers, "own_servers": self.own,
                               "class": self.server_class, "per_site": self.per_site,
                               "basis": self.basis}
        if self.on:
            doc |= {"on": self.on, "why": self.why}
        if not self.production:
            doc["production"] = False
        if self.nodes_per_server != 1:
            doc["nodes_per_server"] = self.nodes_per_server
        return doc


@dataclass
class CapacityPlan:
    accounts: int
    profile: Path
    headroom: float
    daily_actives: float
    average_rps: float
    peak_rps: float
    planned_rps: float
    endpoints: list[tuple[str, float]]
    rates: dict[str, float]
    storage: dict[str, float]
    roles: dict[str, RoleNeed]
    inputs: list[Input]
    classes: dict[str, ServerClass]
    layout: Layout
    cost: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    losses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_servers(self) -> int:
        """Production servers: each role's own (co-located roles and load generators add 0)."""
        return sum(r.own for r in self.roles.values())

    def servers_per_role(self) -> dict[str, int]:
        return {k: r.servers for k, r in self.roles.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "profile": str(self.profile),
            "headroom": self.headroom,
            "daily_actives": round(self.daily_actives),
            "average_rps": round(self.average_rps, 1),
            "peak_rps": round(self.peak_rps, 1),
            "planned_rps": round(self.planned_rps, 1),
            "endpoints": [{"name": n, "planned_peak_rps": round(v, 2)}
                          for n, v in self.endpoints],
            "rates": {k: round(v, 2) for k, v in self.rates.items()},
            "storage": {k: round(v, 3) for k, v in self.storage.items()},
            "servers": self.total_servers,
            "servers_per_role": self.servers_per_role(),
            "roles": {k: r.to_json() for k, r in self.roles.items()},
            "sites": [{"name": s.name, "provider": s.provider} for s in self.layout.sites],
            "cost": self.cost,
            "losses": self.losses,
            "inputs": [i.to_json() for i in self.inputs],
            "notes": self.notes,
        }


@dataclass
class Profile:
    """Everything the model reads from a profile file, each number with its source."""

    path: Path
    model: Any  # loadgen.traffic.TrafficModel
    app: dict[str, Input]
    cap: dict[str, Input]
    classes: dict[str, ServerClass]
    role_class: dict[str, str]
    layout: Layout

    def v(self, name: str) -> float:
        return (self.app.get(name) or self.cap[name]).value

    def cls(self, role: str) -> ServerClass:
        return self.classes[self.role_class.get(role, "general")]

    def inputs(self) -> list[Input]:
        rows = []
        for name, value, source in self.model.inputs():
            kind = "measured" if source.lower().startswith("measured") else "cited"
            rows.append(Input(name=name, value=value, source=source, kind=kind))
        return rows + list(self.app.values()) + list(self.cap.values())


def load_profile(path: Path | str | None = None, pessimistic: bool = False) -> Profile:
    """The profile at `path` (default profile when None); `pessimistic` lets an input that
    needs its measurement (`unmeasured: refuse`) fall back to its cited, pessimistic value."""
    p = Path(path) if path else DEFAULT_PROFILE
    doc = read_doc(p)
    try:
        model = load_model(p)
    except ProfileError as exc:
        raise CapacityProfileError(str(exc)) from exc
    classes, role_class = server_classes(doc, p)
    return Profile(p, model, app_inputs(doc, p, pessimistic=pessimistic),
                   capacity_inputs(doc, p), classes, role_class, read_layout(doc, p))


def app_cores(model: Any, accounts: float, app: Mapping[str, Input]) -> tuple[float, str]:
    """App cores that carry the peak of `accounts` at the planned utilisation (no surge
    margin, no site-loss spare: the per-core load the plan assumes)."""
    per_core = app["app_rps_per_core"]
    util = app["app_headroom"].value if "app_headroom" in app else 1.0
    peak = model.peak_rps(accounts)
    note = f", planned at {util:.0%} utilisation" if "app_headroom" in app else ""
    return peak / (per_core.value * util), (f"peak {peak:,.0f} req/s / {per_core.value:,.0f} "
                                            f"req/s per core ({per_core.source}){note}")


def _servers(cores: float, cls: ServerClass) -> int:
    return max(1, math.ceil(cores / cls.cores - 1e-9))


def _grown(per_month: float, growth: float, months: float) -> float:
    """Sum of a monthly amount growing by `growth` a month, over `months` months."""
    if growth == 0:
        return per_month * months
    return per_month * ((1 + growth) ** months - 1) / growth


@dataclass(frozen=True)
class Load:
    """The traffic a plan carries at its peak: requests, writes and what they cost the stores."""

    daily_actives: float
    average_rps: float
    peak_rps: float
    planned_rps: float                  # peak x surge factor x headroom
    endpoints: list[tuple[str, float]]  # (request, planned req/s), busiest first
    writes_per_dau: float
    posts_per_s: float
    fanout_per_s: float
    redis_cores: float                  # Redis cores kept busy (requests + fan-out inserts)
    pg_cores: float                     # PostgreSQL cores kept busy

    def rates(self) -> dict[str, float]:
        return {"posts_per_s": self.posts_per_s, "fanout_inserts_per_s": self.fanout_per_s,
                "redis_cpu_cores": self.redis_cores, "pg_cpu_cores": self.pg_cores}


def peak_load(accounts: int, prof: Profile, headroom: float) -> Load:
    m, v = prof.model, prof.v
    surge = v("surge_peak_factor") * headroom
    peak = m.peak_rps(accounts)
    planned = peak * surge
    endpoints: list[tuple[str, float]] = []
    for kind, rps in m.peak_rps_by_action(accounts).items():
        names = ACTION_REQUESTS[kind]
        endpoints += [(n, rps / len(names) * surge) for n in names]
    endpoints.sort(key=lambda e: -e[1])
    dau = m.daily_actives(accounts)
    writes = sum(m.actions_per_dau[k].value for k in WRITE_ACTIONS if k in m.actions_per_dau)
    posts_s = dau * writes / SECONDS_PER_DAY * m.peak_to_average.value * surge
    fanout_s = posts_s * v("fanout_per_post")
    redis_cores = (planned * v("redis_cpu_ms_per_request") / 1000
                   + fanout_s * v("redis_cpu_us_per_fanout_insert") / 1e6)
    return Load(dau, m.average_rps(accounts), peak, planned, endpoints, writes, posts_s,
                fanout_s, redis_cores, planned * v("pg_cpu_ms_per_request") / 1000)


def serving_need(prof: Profile, role: str, cores: float, what: str, min_per_site: int = 1
                 ) -> RoleNeed:
    """A stateless role: the cores' servers, N+1 by site, at least `min_per_site` per site."""
    lay, cls = prof.layout, prof.cls(role)
    sites = len(lay.sites)
    base = _servers(cores, cls)
    total = max(n_plus_one(base, sites), min_per_site * sites)
    return RoleNeed(role, total, cls.name, distribute(total, lay.interleaved()),
                    f"{what} = {cores:,.1f} cores -> {base} x {cls.cores}-core; "
                    f"N+1 by site over {sites} sites -> {total}", cores=cores)


def serving_needs(prof: Profile, load: Load) -> dict[str, RoleNeed]:
    """app, worker, lb and pgbouncer. The worker runs on the app servers when its measured
    CPU adds no server to them; pgbouncer on the load balancers when each site has enough."""
    v, planned, fanout = prof.v, load.planned_rps, load.fanout_per_s
    lay = prof.layout
    app_c = planned / (v("app_rps_per_core") * v("app_headroom"))
    app_what = (f"{planned:,.0f} req/s / ({v('app_rps_per_core'):,.0f} x "
                f"{v('app_headroom'):.0%})")
    worker_c = fanout / (v("fanout_inserts_per_core") * v("worker_utilisation"))
    worker_what = (f"{fanout:,.0f} fan-out inserts/s / ({v('fanout_inserts_per_core'):,.0f} x "
                   f"{v('worker_utilisation'):.0%})")
    app = serving_need(prof, "app", app_c, app_what)
    both = serving_need(prof, "app", app_c + worker_c, f"{app_what} + worker {worker_c:,.2f}")
    if both.servers == app.servers and prof.cls("worker") == prof.cls("app"):
        app, worker = both, RoleNeed(
            "worker", both.servers, both.server_class, dict(both.per_site),
            f"{worker_what} = {worker_c:,.2f} cores, on every app server",
            on={"app": dict(both.per_site)}, cores=worker_c,
            why=(f"its CPU ({worker_c:,.2f} cores at the planned peak, from the measured "
                 f"{v('fanout_inserts_per_core'):,.0f} inserts per core) fits the app servers' "
                 f"spare: app {app_c:,.1f} + worker {worker_c:,.2f} cores still need "
                 f"{both.servers} servers"))
    else:
        worker = serving_need(prof, "worker", worker_c, worker_what)
    lb = serving_need(prof, "lb", planned / (v("lb_rps_per_core") * v("lb_utilisation")),
                      f"{planned:,.0f} req/s / ({v('lb_rps_per_core'):,.0f} x "
                      f"{v('lb_utilisation'):.0%})", min_per_site=2)
    pgb = int(v("pgbouncer_per_site"))
    per_site = {s: pgb for s in lay.site_names}
    pgbouncer = RoleNeed("pgbouncer", pgb * len(lay.sites), prof.cls("pgbouncer").name,
                         per_site, f"{pgb} per serving site x {len(lay.sites)} sites")
    if prof.cls("pgbouncer") == prof.cls("lb") and \
            all(lb.per_site.get(site, 0) >= n for site, n in per_site.items()):
        lb_cores = lb.servers * prof.cls("lb").cores
        pgbouncer.on = {"lb": dict(per_site)}
        pgbouncer.why = (f"its HAProxy router (Patroni's primary and replicas) already sits "
                         f"beside HAProxy; the load balancers need {lb.cores or 0:,.1f} of "
                         f"their {lb_cores} cores at the planned peak (pgbouncer's own CPU is "
                         "not measured)")
    return {"app": app, "worker": worker, "lb": lb, "pgbouncer": pgbouncer}


def redis_need(prof: Profile, load: Load, accounts: int) -> tuple[RoleNeed, float, float]:
    """Memory and CPU decide the masters (one core each: single-threaded), spread so that no
    provider holds half of them; each has its replicas; several nodes share a server
    (packing.pack_redis). Also (bytes, cached timelines)."""
    v, lay, cls = prof.v, prof.layout, prof.cls("redis")
    timelines = accounts * v("timeline_cached_ratio")
    redis_bytes = timelines * v("timeline_bytes") + load.daily_actives * v("redis_bytes_per_dau")
    usable = cls.ram_gib * GIB * v("redis_memory_fraction")
    by_mem = math.ceil(redis_bytes / usable)
    by_load = math.ceil(load.redis_cores / v("redis_utilisation") - 1e-9)
    needed = masters = max(3, by_mem, by_load)
    providers = len(lay.providers)
    # with two providers one of them always holds half: left as it is and said in the notes
    while providers > 2 and math.ceil(masters / providers) * 2 >= masters:
        masters += 1
    spread = (f" -> {masters} so that no provider holds half of them" if masters != needed
              else "")
    replicas = int(v("redis_replicas"))
    net = load.planned_rps * v("redis_net_bytes_per_request")
    try:
        pack = pack_redis(lay, cls, masters, replicas, redis_bytes, net, v)
    except ValueError as exc:
        raise CapacityProfileError(str(exc)) from None
    limits = ", ".join(f"{k} {n}" for k, n in pack.limits.items())
    net_note = (f"; network after losing the biggest site {pack.net_gbit_after_loss:.2f} "
                f"Gbit/s per server ({net * 8 / 1e9:.2f} Gbit/s: "
                f"{v('redis_net_bytes_per_request'):,.0f} B per request) of "
                f"{cls.network_gbit:g} Gbit/s x {v('redis_utilisation'):.0%}"
                if cls.network_gbit and pack.net_gbit_after_loss is not None else
                "; network not checked (no network_gbit in the server class)")
    more = (f" -> {pack.masters} masters to fill {pack.servers} x {pack.nodes_per_server} "
            "nodes" if pack.masters != masters else "")
    need = RoleNeed("redis", pack.servers, cls.name, pack.per_site,
                    f"load: ({load.planned_rps:,.0f} req/s x "
                    f"{v('redis_cpu_ms_per_request'):.3g} ms + {load.fanout_per_s:,.0f} fan-out "
                    f"inserts/s x {v('redis_cpu_us_per_fanout_insert'):.3g} µs) CPU / "
                    f"{v('redis_utilisation'):.0%} = "
                    f"{load.redis_cores / v('redis_utilisation'):,.1f} cores -> {by_load} "
                    f"masters (single-threaded: a core each); memory "
                    f"{redis_bytes / GIB:,.1f} GiB / {usable / GIB:,.0f} GiB usable -> "
                    f"{by_mem}; masters = max(3, memory {by_mem}, load {by_load}) = "
                    f"{needed}{spread}, x (1 + {replicas} replica){more}; packed "
                    f"{pack.nodes_per_server} nodes per server ({pack.node_gib:,.1f} GiB each; "
                    f"nodes a server allows by {limits}{net_note}) on {pack.servers} servers, "
                    "the fewest whose layout keeps every shard and a master majority after "
                    "losing any site or provider"
                    + (f" (fewer: {pack.why})" if pack.why else ""),
                    nodes_per_server=pack.nodes_per_server, masters=pack.masters)
    return need, redis_bytes, timelines


def postgres_need(prof: Profile, load: Load) -> RoleNeed:
    """A primary, a synchronous standby and read replicas (N+1 by site)."""
    v, lay, cls = prof.v, prof.layout, prof.cls("postgres")
    sites = len(lay.sites)
    read_c = load.pg_cores / v("pg_utilisation")
    read_base = _servers(read_c, cls)
    # after losing the biggest site, one member left is the primary and reads nothing: the
    # members are N+1 by site for the readers *and* the primary
    members = max(3, n_plus_one(read_base + 1, sites))
    read_servers = members - 1
    order = [lay.primary_site, lay.standby_site]
    order += [s for s in lay.interleaved() if s not in order]
    return RoleNeed("postgres", members, cls.name, distribute(members, order), cores=read_c,
                    basis=
                    f"primary + reads: {load.planned_rps:,.0f} req/s x "
                    f"{v('pg_cpu_ms_per_request'):.3g} ms CPU / "
                    f"{v('pg_utilisation'):.0%} = {read_c:,.1f} cores -> "
                    f"{read_base} x {cls.cores}-core; N+1 by site over {sites} sites (a "
                    f"primary and {read_base} readers left after losing the biggest) "
                    f"-> {read_servers} readers (the standby reads too)")


@dataclass(frozen=True)
class Storage:
    """Database, media and backup bytes now and at the profile's horizon."""

    months: float
    posts_now: float
    posts_per_month: float
    accounts_then: float
    pg_now: float
    pg_then: float
    pg_per_month: float
    media_now: float
    media_then: float
    media_per_month: float
    image_share: float


def storage_over_horizon(prof: Profile, load: Load, accounts: int) -> Storage:
    m, v = prof.model, prof.v
    months, growth = v("storage_horizon_months"), v("account_growth_per_month")
    posts_month = load.daily_actives * load.writes_per_dau * DAYS_PER_MONTH
    posts_now = accounts * v("history_posts_per_account")
    posts_then = posts_now + _grown(posts_month, growth, months)
    accounts_then = accounts * (1 + growth) ** months
    per_post, per_account = v("pg_bytes_per_post"), v("pg_bytes_per_account")
    images_day = m.actions_per_dau["image_upload"].value if "image_upload" in \
        m.actions_per_dau else 0.0
    originals = sum(m.actions_per_dau[k].value for k in ("post", "reply")
                    if k in m.actions_per_dau)
    image_share = images_day / originals if originals else 0.0
    media_month = load.daily_actives * images_day * DAYS_PER_MONTH * v("media_bytes_per_image")
    media_now = posts_now * image_share * v("media_bytes_per_image")
    return Storage(months, posts_now, posts_month, accounts_then,
                   posts_now * per_post + accounts * per_account,
                   posts_then * per_post + accounts_then * per_account,
                   posts_month * per_post + accounts * growth * per_account,
                   media_now, media_now + _grown(media_month, growth, months), media_month,
                   image_share)


def storage_needs(prof: Profile, st: Storage) -> dict[str, RoleNeed]:
    v, lay = prof.v, prof.layout
    order = lay.interleaved()
    mcls, bcls = prof.cls("media"), prof.cls("backup")
    media_servers = max(3, len(lay.sites), math.ceil(
        st.media_then * v("media_copies") / (mcls.disk_gib * GIB * v("media_disk_fraction"))))
    backup_bytes = st.pg_then * v("backup_copies")
    n_backup = max(2, math.ceil(backup_bytes / (bcls.disk_gib * GIB *
                                                v("media_disk_fraction"))))
    return {
        "media": RoleNeed("media", media_servers, mcls.name, distribute(media_servers, order),
                          f"{st.media_then / 1e12:,.1f} TB x {v('media_copies'):g} copies / "
                          f"{mcls.disk_gib:,.0f} GiB x {v('media_disk_fraction'):.0%}, "
                          f">= 3 and one per site"),
        "backup": RoleNeed("backup", n_backup, bcls.name, distribute(n_backup, order, start=1),
                           f"{backup_bytes / 1e12:,.1f} TB ({v('backup_copies'):g} database "
                           "sizes), >= 2 in different providers"),
    }


def fixed_needs(prof: Profile, load: Load) -> dict[str, RoleNeed]:
    """Roles sized by count (etcd, monitoring, DNS: to survive a site or provider) and the
    load generators that drive the planned peak (not production: not counted). etcd members
    run on the light servers (dns, monitoring) when those keep its quorum spread."""
    v, lay = prof.v, prof.layout
    order, sites = lay.interleaved(), len(lay.sites)
    out: dict[str, RoleNeed] = {}
    for role, key in (("dns", "dns_servers"), ("monitoring", "monitoring_servers"),
                      ("etcd", "etcd_members")):
        given = int(v(key))
        n = _quorum_size(given, lay, order) if role == "etcd" else \
            max(given, 2 if sites > 1 else 1)  # one left after losing a site or provider
        if role == "dns":  # the placement rule's minimum (deploy/spec/placement.py)
            n = max(n, DNS_MIN_SERVERS)
        # monitoring starts where dns ends, so that the light servers cover more sites
        start = out["dns"].servers % sites if role == "monitoring" else 0
        out[role] = RoleNeed(role, n, prof.cls(role).name, distribute(n, order, start=start),
                             f"{key} {given}" + (f" -> {n} to survive a site or provider"
                                                 if n != given else ""))
    etcd = out["etcd"]
    light = {r: out[r].per_site for r in ("dns", "monitoring")
             if prof.cls(r) == prof.cls("etcd")}
    hosts = etcd_hosts(etcd.servers, lay, light) if light else None
    if hosts is not None:
        per_site: dict[str, int] = {}
        for counts in hosts.values():
            for site, k in counts.items():
                per_site[site] = per_site.get(site, 0) + k
        etcd.per_site = {s: per_site.get(s, 0) for s in order}
        etcd.on = hosts
        etcd.why = ("a light member (Raft: a small disk and CPU) on the dns and monitoring "
                    "servers, spread over sites so that no site or provider holds half of the "
                    f"{etcd.servers} members; the kit has no PostgreSQL witness servers to "
                    "carry them")
    gcls = prof.cls("loadgen")
    gen_c = load.planned_rps / 1000 * v("generator_cores_per_1000_rps")
    n_gen = max(2, _servers(gen_c, gcls))
    out["loadgen"] = RoleNeed("loadgen", n_gen, gcls.name, distribute(n_gen, order),
                              f"drive the planned peak: {gen_c:,.1f} generator cores, >= 2; "
                              "not production (rented for a load test): not counted",
                              production=False, cores=gen_c)
    return out


def plan_notes(prof: Profile, roles: Mapping[str, RoleNeed], st: Storage) -> list[str]:
    lay, pcls = prof.layout, prof.cls("postgres")
    notes: list[str] = []
    pdisk = st.pg_then / prof.v("pg_disk_fraction")
    if pdisk > pcls.disk_gib * GIB:
        notes.append(f"postgres: {st.pg_then / 1e12:,.1f} TB at {st.months:g} months needs "
                     f"{pdisk / 1e12:,.1f} TB of disk per member, more than the "
                     f"{pcls.name} class's {pcls.disk_gib:,.0f} GiB — bigger disks, a shorter "
                     "horizon or archiving old posts")
    if len(lay.sites) < 2:
        notes.append("one site: nothing survives its loss (N+1 by site needs >= 2 sites)")
    if len(lay.providers) == 2:
        notes.append("redis: with two providers one of them holds at least half the masters; "
                     "losing it loses the cluster's majority — add a site at a third provider")
    return notes


def plan_capacity(accounts: int, prof: Profile, headroom: float = 1.0) -> CapacityPlan:
    """Servers per role for `accounts` (see the module doc for the arithmetic)."""
    if accounts <= 0:
        raise CapacityProfileError("--accounts: must be > 0 (e.g. 10M)")
    if headroom < 1:
        raise CapacityProfileError("--headroom: must be >= 1 (a multiple of the plan's load)")
    v = prof.v
    load = peak_load(accounts, prof, headroom)
    redis, redis_bytes, timelines = redis_need(prof, load, accounts)
    st = storage_over_horizon(prof, load, accounts)
    needs = {**serving_needs(prof, load), "redis": redis, "postgres": postgres_need(prof, load),
             **storage_needs(prof, st), **fixed_needs(prof, load)}
    roles = {k: needs[k] for k in ROLE_ORDER if k in needs}
    storage = {
        "pg_gb_now": st.pg_now / 1e9, "pg_gb_at_horizon": st.pg_then / 1e9,
        "pg_gb_per_month": st.pg_per_month / 1e9, "pg_bytes_per_post": v("pg_bytes_per_post"),
        "pg_bytes_per_account": v("pg_bytes_per_account"), "horizon_months": st.months,
        "posts_now": st.posts_now, "posts_per_month": st.posts_per_month,
        "redis_gib": redis_bytes / GIB, "redis_cached_timelines": timelines,
        "redis_bytes_per_timeline_entry": v("timeline_bytes") / 800,
        "media_tb_now": st.media_now / 1e12, "media_tb_at_horizon": st.media_then / 1e12,
        "media_tb_per_month": st.media_per_month / 1e12,
        "media_bytes_per_post": st.image_share * v("media_bytes_per_image"),
        "backup_tb": st.pg_then * v("backup_copies") / 1e12,
        "accounts_at_horizon": st.accounts_then,
    }
    notes = plan_notes(prof, roles, st)
    lost = losses(prof, roles)
    notes += loss_lines(lost)
    cost = _cost(roles, prof.classes)
    if cost is None:
        notes.append("cost: not every server class has a price_per_month in the profile")
    return CapacityPlan(accounts, prof.path, headroom, load.daily_actives, load.average_rps,
                        load.peak_rps, load.planned_rps, load.endpoints, load.rates(), storage,
                        roles, prof.inputs(), prof.classes, prof.layout, cost, notes, lost)


def _quorum_size(n: int, lay: Layout, order: list[str]) -> int:
    """The smallest odd member count >= max(n, 3) where, spread in `order`, no site and no
    provider holds half the members (a raft group that survives losing either)."""
    n = max(n, 3)
    n += 1 - n % 2
    for _ in range(50):
        per_site = distribute(n, order)
        per_prov: dict[str, int] = {}
        for site, k in per_site.items():
            per_prov[lay.provider_of(site)] = per_prov.get(lay.provider_of(site), 0) + k
        if len(lay.sites) < 2 or max([*per_site.values(), *per_prov.values()]) * 2 < n:
            return n
        n += 2
    return n


def _cost(roles: Mapping[str, RoleNeed], classes: Mapping[str, ServerClass]
          ) -> dict[str, Any] | None:
    used = {r.server_class for r in roles.values() if r.own}
    if any(classes[c].price is None for c in used):
        return None
    currencies = {classes[c].currency for c in used}
    by_class: dict[str, dict[str, Any]] = {}
    for r in roles.values():
        if not r.own:
            continue
        c = classes[r.server_class]
        e = by_class.setdefault(c.name, {"servers": 0, "price_per_month": c.price,
                                         "source": c.price_source})
        e["servers"] += r.own
    for e in by_class.values():
        e["per_month"] = e["servers"] * e["price_per_month"]
    return {"currency": "/".join(sorted(currencies)),
            "per_month": sum(e["per_month"] for e in by_class.values()),
            "by_class": by_class}
