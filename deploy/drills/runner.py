"""One drill end to end: the cluster protected first, traffic through every site's virtual IP,
the fault, its restore, the aftermath measured, every acknowledged post read back, and (by
default) the leader moved back to its primary site afterwards."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from freehold.deploy.drills import events as ev
from freehold.deploy.drills.accounts import DrillAccount, signup
from freehold.deploy.drills.followers import FOLLOWERS, FollowerCheck, Followers, missed
from freehold.deploy.drills.media import ImageCheck, MediaTraffic, verify_images
from freehold.deploy.drills.scenarios import (
    Ctx,
    DrillError,
    Scenario,
    current_leader,
)
from freehold.deploy.drills.traffic import (
    LOGIN_TIMEOUT,
    Account,
    Traffic,
    TrafficError,
    login,
    verify,
)
from freehold.deploy.drills.watch import (
    Hosts,
    Protection,
    RoleSampler,
    leader,
    nudge_wal,
    patroni_members,
    ready,
    wait_protected,
)
from freehold.deploy.spec import ClusterSpec
from freehold.deploy.spec.placement import postgres_primary_site
from freehold.roles.lb.config import vips as site_vips
from freehold.roles.postgres.config import PATRONICTL, primary_site_member
from freehold.roles.redis.config import LAYOUT as REDIS_LAYOUT
from freehold.roles.redis.config import SCRIPT as REDIS_SCRIPT
from freehold.roles.redis.config import coordinator

WARMUP_S = 5.0  # traffic before the fault: the baseline on the timeline
TAIL_S = 10.0  # traffic after the restore: what the restore itself costs users
FLOWING_S = 3.0  # writes on a site "flow" when every one of the last this many seconds passed


@dataclass
class Session:
    """Tokens of the drill's accounts, logged in once for a whole suite (log-ins are rate
    limited per address)."""

    vips: dict[str, str]
    ca_file: str | None
    tokens: dict[str, list[str]] = field(default_factory=dict)
    made: list[DrillAccount] = field(default_factory=list)  # the drill's own accounts
    following: Followers | None = None

    @classmethod
    def open(cls, spec: ClusterSpec, ca_file: str | None, accounts: list[Account],
             per_site: int = 2) -> Session:
        vips = site_vips(spec)
        if not vips:
            raise DrillError(f"{spec.name}: no site has a virtual IP (no lb servers): nothing "
                             "to send users' traffic to")
        if len(accounts) < per_site * len(vips):
            raise DrillError(f"{per_site * len(vips)} accounts needed ({per_site} per site with "
                             f"a virtual IP), {len(accounts)} given")
        s = cls(vips, ca_file)
        base = f"https://{vips[sorted(vips)[0]]}"
        try:
            for i, site in enumerate(sorted(vips)):
                s.tokens[site] = [login(base, a, s.traffic_ctx())
                                  for a in accounts[i * per_site:(i + 1) * per_site]]
        except TrafficError as e:
            raise DrillError(str(e)) from None
        return s

    def traffic_ctx(self) -> Any:
        from freehold.deploy.drills.traffic import tls

        return tls(self.ca_file)

    @property
    def bases(self) -> dict[str, str]:
        return {site: f"https://{vip}" for site, vip in self.vips.items()}

    def base(self, down: set[str] | frozenset[str] = frozenset()) -> str:
        """The first site's URL that is not down by design (the first site's when all are)."""
        up = [s for s in sorted(self.vips) if s not in down] or sorted(self.vips)
        return self.bases[up[0]]

    def drill_accounts(self, n: int) -> list[DrillAccount]:
        """`n` accounts of the drill's own (signed up once per suite through the first site)."""
        with httpx.Client(verify=self.traffic_ctx(), timeout=LOGIN_TIMEOUT) as client:
            try:
                while len(self.made) < n:
                    self.made.append(signup(client, self.base()))
            except TrafficError as e:
                raise DrillError(str(e)) from None
        return self.made[:n]

    def followers(self) -> Followers:
        """The drill's followers of every writing account (made once per suite)."""
        if self.following is None:
            accounts = self.drill_accounts(FOLLOWERS)
            try:
                self.following = Followers.create(
                    self.base(), self.traffic_ctx(), accounts,
                    [t for site in sorted(self.tokens) for t in self.tokens[site]])
            except TrafficError as e:
                raise DrillError(str(e)) from None
        return self.following


def lab_accounts() -> list[Account]:
    """The lab's demo accounts (app.demo: lab data, one known password)."""
    from freehold.app.demo.content import ADMIN, PASSWORD, USERNAMES

    return [Account(u, PASSWORD) for u in USERNAMES if u not in (ADMIN, "quick_deals")]


@dataclass
class SiteResult:
    site: str
    write: ev.Outage
    read: ev.Outage
    statuses: dict[str, int]
    down_by_design: bool
    # requests sent while the fault was held: p50/p99 of what users waited, failures
    write_latency: ev.Latency | None = None
    read_latency: ev.Latency | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"site": self.site, "write_outage": self.write.to_doc(),
                "read_outage": self.read.to_doc(), "statuses": self.statuses,
                "down_by_design": self.down_by_design,
                "write_latency": self.write_latency.to_doc() if self.write_latency else None,
                "read_latency": self.read_latency.to_doc() if self.read_latency else None}


@dataclass
class DrillResult:
    scenario: str
    title: str
    target_write_s: float
    leader_before: str
    leader_after: str | None
    leader_moves: bool | None
    fault_start: float
    fault_end: float
    sites: list[SiteResult]
    acked: int
    lost: list[str]
    unchecked: list[str]
    server_errors: dict[str, int]
    bare_503: int
    two_primaries: list[tuple[float, str, str]]
    protection: Protection
    events: list[ev.Event]
    switched_back: dict[str, Any] | None = None
    seconds: float = 0.0
    # the scenario's own checks (name: passed), a line saying why for each, and their figures
    scenario_checks: dict[str, bool] = field(default_factory=dict)
    check_notes: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    report_latency: bool = False
    # what the fault acted on (scenarios.Ctx.victims): servers, or a link
    victims: list[str] = field(default_factory=list)

    @property
    def worst_write_s(self) -> float | None:
        """Longest write outage among the sites not down by design (None: one never
        recovered)."""
        vals = [s.write.seconds for s in self.sites if not s.down_by_design]
        if any(v is None for v in vals):
            return None
        return max((v for v in vals if v is not None), default=0.0)

    def checks(self) -> dict[str, bool]:
        worst = self.worst_write_s
        out = {"write outage within target": worst is not None and
               worst <= self.target_write_s,
               "no acknowledged write lost": not self.lost and not self.unchecked,
               "no HTTP 500": not self.server_errors,
               "never two writable primaries": not self.two_primaries,
               "protected again": self.protection.ok}
        if self.leader_moves is not None:
            moved = self.leader_after is not None and self.leader_after != self.leader_before
            out["leader moved" if self.leader_moves else "leader stayed"] = \
                moved == self.leader_moves
        out.update(self.scenario_checks)
        return out

    @property
    def ok(self) -> bool:
        return all(self.checks().values())

    def to_doc(self, with_events: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "scenario": self.scenario, "title": self.title, "ok": self.ok,
            "victims": self.victims, "checks": self.checks(),
            "target_write_s": self.target_write_s,
            "worst_write_outage_s": None if self.worst_write_s is None
            else round(self.worst_write_s, 2),
            "leader_before": self.leader_before, "leader_after": self.leader_after,
            "fault_start": round(self.fault_start, 3), "fault_end": round(self.fault_end, 3),
            "fault_s": round(self.fault_end - self.fault_start, 1),
            "sites": [s.to_doc() for s in self.sites], "acknowledged_writes": self.acked,
            "lost_writes": self.lost, "unchecked_writes": len(self.unchecked),
            "server_errors": self.server_errors, "bare_503": self.bare_503,
            "two_primaries": self.two_primaries, "protection": self.protection.to_doc(),
            "switched_back": self.switched_back, "seconds": round(self.seconds, 1),
            "check_notes": self.check_notes, "details": self.details}
        if with_events:
            doc["events"] = [e.to_doc() for e in self.events]
        return doc


def flowing(events: list[ev.Event], site: str, now: float) -> bool:
    recent = [e for e in events if e.site == site and e.kind == "write"
              and e.t1 >= now - FLOWING_S]
    return len(recent) >= 2 and all(e.ok for e in recent)


def hold(scn: Scenario, ctx: Ctx, traffic: Traffic, start: float, down: set[str]) -> None:
    """Until the fault has had its effect: at least min_hold_s, then writes flowing on every
    site not down by design and (when the leader must move) a new leader; at most max_hold_s."""
    sites = [s for s in traffic.vips if s not in down]
    while time.time() - start < scn.max_hold_s:
        time.sleep(1.0)
        now = time.time()
        if now - start < scn.min_hold_s:
            continue
        evs = traffic.snapshot()
        if not all(flowing(evs, s, now) for s in sites):
            continue
        if scn.leader_moves:
            gone = set(ctx.state.get("down", [])) | set(ctx.state.get("cut", []))
            got = leader(patroni_members(ctx.spec, ctx.hosts, exclude=gone))
            if got is None or got == ctx.leader:
                continue
        return


def baseline(traffic: Traffic, limit_s: float = 120.0) -> None:
    """Writes flowing on every site for WARMUP_S before the fault (bounded): a drill started on
    a cluster that already fails measures nothing."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(WARMUP_S)
        evs = traffic.snapshot()
        now = time.time()
        if all(flowing([e for e in evs if e.t0 >= now - WARMUP_S], s, now)
               for s in traffic.vips):
            return
    bad = sorted(s for s in traffic.vips if not flowing(traffic.snapshot(), s, time.time()))
    traffic.stop()
    raise DrillError(f"writes do not flow through site(s) {', '.join(bad)} before the fault "
                     f"({limit_s:.0f} s): see `freehold status`")


def run_drill(scn: Scenario, spec: ClusterSpec, hosts: Hosts, lab: Any | None,
              session: Session, back: bool = True) -> DrillResult:
    started = time.monotonic()
    pre = ready(spec, hosts)
    if not pre.ok:
        raise DrillError(f"the cluster is not protected before the drill ({pre.to_doc()}): "
                         "wait for it, see `freehold status`")
    ctx = Ctx(spec, hosts, lab, current_leader(spec, hosts))
    down = scn.down_sites(ctx)
    members = [s.name for s in spec.servers_with_role("postgres")]
    sampler = RoleSampler(hosts, members, WARMUP_S + scn.max_hold_s + 600 + TAIL_S)
    label = f"{scn.name}-{int(time.time())}"
    followers = _warm_followers(session) if scn.followers else None
    media = _media_traffic(session, label) if scn.media else None
    traffic = Traffic(session.vips, session.tokens, session.ca_file, label=label)
    sampler.start()
    traffic.start()
    if media is not None:
        media.start()
    injected = False
    try:
        baseline(traffic)
        fault_start = time.time()
        injected = True
        scn.inject(ctx)
        hold(scn, ctx, traffic, fault_start, down)
        if scn.during is not None:
            scn.during(ctx)
    finally:
        if injected:
            scn.restore(ctx)
        fault_end = time.time()
        time.sleep(TAIL_S)
        events = traffic.stop()
        media_events = media.stop() if media is not None else []
        samples = sampler.stop()
    repos = scn.archive_repos(ctx) if scn.archive_repos is not None else None
    protection = wait_protected(spec, hosts, since=fault_end, repos=repos)
    base = session.base(down)
    acked = ev.acknowledged(events)
    lost, unchecked = verify(base, session.tokens[_site_of(session, base)][0],
                             session.ca_file, acked)
    after = leader(patroni_members(spec, hosts))
    every = sorted([*events, *media_events], key=lambda e: e.t0)
    sites = [SiteResult(s, ev.outage(events, s, "write", fault_start),
                        ev.outage(events, s, "read", fault_start),
                        ev.statuses([e for e in every if e.site == s]), s in down,
                        ev.latency(events, s, "write", fault_start, fault_end),
                        ev.latency(events, s, "read", fault_start, fault_end))
             for s in sorted(session.vips)]
    result = DrillResult(scn.name, scn.title, scn.target_write_s, ctx.leader, after,
                         scn.leader_moves, fault_start, fault_end, sites, len(acked), lost,
                         unchecked, ev.server_errors(every), ev.bare_503(every),
                         ev.two_primaries(samples), protection, every,
                         report_latency=scn.report_latency, victims=list(ctx.victims))
    result.scenario_checks.update(ctx.state.get("checks", {}))
    result.check_notes.update(ctx.state.get("notes", {}))
    result.details.update(ctx.state.get("details", {}))
    if followers is not None:
        add_follower_check(result, missed(base, session.traffic_ctx(), followers, acked))
    if media is not None:
        add_image_check(result, verify_images(media.uploads, session.traffic_ctx(), fault_start,
                                              fault_end, media_events, len(media.wrong_reads)))
    if scn.no_failed_request:
        add_no_failed_request(result, ev.failed_requests(every, scn.allowed_statuses))
    if back:
        result.switched_back = switch_back(spec, hosts)
        if spec.servers_with_role("redis"):
            result.details["redis_back"] = redis_back(spec, hosts)
    result.seconds = time.monotonic() - started
    return result


def redis_back(spec: ClusterSpec, hosts: Hosts, limit_s: float = 300.0) -> dict[str, Any]:
    """Every Redis shard's master back on the layout's node (roles/redis/cluster_setup.py
    `apply` on the coordinator, as a deploy does): after a drill the old masters come back as
    replicas, and a next drill would start from masters crowded into fewer sites."""
    lead = coordinator(spec)
    started = time.monotonic()
    if lead is None:
        return {"ok": True, "moved": [], "seconds": 0.0}
    code, out = hosts.run(lead.name, f"python3 {REDIS_SCRIPT} apply {REDIS_LAYOUT}",
                          timeout=limit_s)
    return {"ok": code == 0, "moved": [line for line in out.splitlines()
                                       if line.startswith("shard ")],
            "seconds": round(time.monotonic() - started, 1),
            **({} if code == 0 else {"output": out.strip()[-300:]})}


def _site_of(session: Session, base: str) -> str:
    return next(s for s, b in session.bases.items() if b == base)


def _warm_followers(session: Session) -> Followers:
    followers = session.followers()
    try:
        followers.warm(session.base(), session.traffic_ctx())
    except TrafficError as e:
        raise DrillError(str(e)) from None
    return followers


def _media_traffic(session: Session, label: str) -> MediaTraffic:
    sites = sorted(session.vips)
    uploaders = dict(zip(sites, session.drill_accounts(len(sites)), strict=True))
    media = MediaTraffic(session.bases, uploaders, session.traffic_ctx(), label)
    try:
        media.seed()
    except TrafficError as e:
        raise DrillError(str(e)) from None
    return media


FOLLOWER_CHECK = "no follower missed a post"
IMAGE_CHECK = "every image still readable"
NO_FAILED_CHECK = "no failed request"


def add_follower_check(result: DrillResult, got: FollowerCheck) -> None:
    result.scenario_checks[FOLLOWER_CHECK] = got.ok
    result.check_notes[FOLLOWER_CHECK] = got.summary()
    result.details["followers"] = got.to_doc()


def add_image_check(result: DrillResult, got: ImageCheck) -> None:
    result.scenario_checks[IMAGE_CHECK] = got.ok
    result.check_notes[IMAGE_CHECK] = got.summary()
    result.details["images"] = got.to_doc()


def add_no_failed_request(result: DrillResult, failed: dict[str, int]) -> None:
    result.scenario_checks[NO_FAILED_CHECK] = not failed
    result.check_notes[NO_FAILED_CHECK] = (
        "every request answered 2xx" if not failed else
        f"{sum(failed.values())} failed: " + ", ".join(
            f"{'no answer' if k == str(ev.NO_ANSWER) else k}×{v}" for k, v in failed.items()))
    result.details["failed_requests"] = failed


def _wait_role(spec: ClusterSpec, hosts: Hosts, member: str, roles: tuple[str, ...],
               limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        members = patroni_members(spec, hosts)
        rows = {m.get("name"): m for m in members}
        if rows.get(member, {}).get("role") in roles and \
                rows[member].get("state") in ("running", "streaming"):
            return True
        if (now := leader(members)) is not None:
            nudge_wal(hosts, now)  # a member back from pg_rewind waits for WAL (watch.nudge_wal)
        time.sleep(2)
    return False


def switch_back(spec: ClusterSpec, hosts: Hosts, limit_s: float = 240.0
                ) -> dict[str, Any] | None:
    """The leader moved back into roles.postgres.primary_site by a planned switchover (None when
    it is there already). In synchronous mode Patroni only switches over to a synchronous
    standby: when the primary site's member is not one, it is made one for the switchover
    (synchronous_node_count 2 for that time, so the standby that held every commit stays one
    too), and the count set back to 1 afterwards."""
    site = postgres_primary_site(spec)
    target = primary_site_member(spec)
    members = patroni_members(spec, hosts)
    now = leader(members)
    if target is None or now is None or spec.server(now).site == site:
        return None
    started = time.monotonic()
    sync = {m.get("name") for m in members if m.get("role") == "sync_standby"}
    widened = target not in sync
    out = ""
    try:
        if widened:
            hosts.run(now, f"{PATRONICTL} edit-config --force --quiet "
                           "-s synchronous_node_count=2", timeout=60)
            if not _wait_role(spec, hosts, target, ("sync_standby",), limit_s):
                return {"from": now, "to": now, "ok": False,
                        "seconds": round(time.monotonic() - started, 1),
                        "output": f"{target} did not become a synchronous standby"}
        code, out = hosts.run(now, f"{PATRONICTL} switchover --leader {now} --candidate "
                                   f"{target} --force", timeout=120)
        moved = code == 0 and _wait_role(spec, hosts, target, ("leader",), limit_s)
    finally:
        if widened:
            hosts.run(target, f"{PATRONICTL} edit-config --force --quiet "
                              "-s synchronous_node_count=1", timeout=60)
    p = wait_protected(spec, hosts, since=time.time(), limit_s=limit_s)
    return {"from": now, "to": p.leader, "ok": moved and p.leader == target,
            "seconds": round(time.monotonic() - started, 1), "output": out.strip()[-200:]}
