"""The drills' faults: each one injected, held until the cluster has reacted, then restored.

`lab` is a deploy.lab.Lab: power loss (kill), clean shutdown (stop), partitions (partition /
heal). Only `planned` scenarios run on real servers (`--production-ok`): they use nothing but
commands on the servers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from freehold.deploy.drills.watch import (
    Hosts,
    leader,
    patroni_members,
    redis_masters,
    redis_nodes,
    wal_reaches,
)
from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.app.config import APP_UNIT
from freehold.roles.backup.config import BackupConfigError, repo_hosts
from freehold.roles.lb.config import site_lbs, vips
from freehold.roles.postgres.config import PATRONICTL
from freehold.roles.registry import role

BLIP_S = 2.0
# Targets (issue 21): writes back within 15 s of a server's power loss, 30 s of a site's.
SERVER_TARGET_S = 15.0
SITE_TARGET_S = 30.0


class DrillError(Exception):
    """A drill that cannot run as asked (one line naming what to fix)."""


@dataclass
class Ctx:
    spec: ClusterSpec
    hosts: Hosts
    lab: Any | None  # None on real servers
    leader: str
    state: dict[str, Any] = field(default_factory=dict)
    # what the fault acted on, in order: servers killed, stopped, cut off, restarted or switched
    # over from and to (a link: "link a-b"); the drill's result names them
    victims: list[str] = field(default_factory=list)

    def hit(self, *names: str) -> None:
        self.victims += [n for n in names if n not in self.victims]

    @property
    def leader_site(self) -> str:
        return self.spec.server(self.leader).site

    def need_lab(self) -> Any:
        if self.lab is None:
            raise DrillError("this scenario cuts power or links: lab only")
        return self.lab


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    inject: Callable[[Ctx], None]
    restore: Callable[[Ctx], None]
    target_write_s: float
    leader_moves: bool | None  # True: must move; False: must stay; None: either
    planned: bool = False  # safe on real servers (no power or link is cut)
    min_hold_s: float = 0.0  # hold the fault at least this long...
    max_hold_s: float = 90.0  # ...and at most this long, until writes flow on the other sites
    down_sites: Callable[[Ctx], set[str]] = lambda ctx: set()  # VIPs down by design
    # the scenario's own checks (deploy.drills.runner runs them):
    followers: bool = False  # the drill's followers' feeds hold every acknowledged post
    media: bool = False  # images uploaded and read during the drill, every one read back
    report_latency: bool = False  # p99 of writes and reads per site in the table
    no_failed_request: bool = False  # every request answered 2xx, or one of allowed_statuses
    allowed_statuses: frozenset[int] = frozenset()
    # run while the fault is held (after the hold, before the restore): records its checks in
    # ctx.state["checks"] (name: passed), "notes" (name: one line) and "details" (JSON)
    during: Callable[[Ctx], None] | None = None
    # repository hosts whose archive tells that WAL is archived again after the restore
    # (default: PostgreSQL's pg_stat_archiver, which needs every repository)
    archive_repos: Callable[[Ctx], list[str]] | None = None


# ---- helpers ----------------------------------------------------------------------------------

def site_servers(ctx: Ctx, site: str) -> list[str]:
    return [s.name for s in ctx.spec.servers if s.site == site]


def vip_holder(ctx: Ctx, site: str) -> str:
    vip = vips(ctx.spec).get(site)
    if vip is None:
        raise DrillError(f"site {site} has no virtual IP (no lb servers)")
    for s in site_lbs(ctx.spec, site):
        code, out = ctx.hosts.run(s.name, f"ip -o -4 addr show | grep -q ' {vip}/' && echo yes",
                                  timeout=10)
        if code == 0 and out.strip() == "yes":
            return s.name
    raise DrillError(f"no lb server of site {site} holds {vip} now")


def redis_victim(ctx: Ctx) -> str:
    """A server holding a Redis master: one that holds no other serving role if there is one,
    never the PostgreSQL leader's."""
    got = redis_nodes(ctx.spec, ctx.hosts)
    if got is None:
        raise DrillError("no Redis server answers CLUSTER NODES")
    by_addr = {s.mesh_address: s for s in ctx.spec.servers_with_role("redis")}
    masters = [by_addr[a] for a in redis_masters(got[1]).values() if a in by_addr]
    masters = [s for s in masters if s.name != ctx.leader]
    if not masters:
        raise DrillError("no Redis master outside the PostgreSQL leader's server")
    serving = {"lb", "app", "pgbouncer", "postgres", "etcd"}
    return min(masters, key=lambda s: (len(serving & set(s.roles)), s.name)).name


def kill(ctx: Ctx, hosts: list[str]) -> None:
    lab = ctx.need_lab()
    ctx.state["down"] = hosts
    ctx.hit(*hosts)
    for h in hosts:
        lab.kill(h)


def start_again(ctx: Ctx) -> None:
    lab = ctx.need_lab()
    down = ctx.state.get("down", [])
    for h in down:
        lab.start(h, wait=False)
    lab.wait_ssh(down, timeout=240)


# ---- the scenarios ----------------------------------------------------------------------------

def _leader_kill(ctx: Ctx) -> None:
    kill(ctx, [ctx.leader])


def _leader_stop(ctx: Ctx) -> None:
    lab = ctx.need_lab()
    ctx.state["down"] = [ctx.leader]
    ctx.hit(ctx.leader)
    lab.stop(ctx.leader)


def _site_kill(ctx: Ctx) -> None:
    kill(ctx, site_servers(ctx, ctx.leader_site))


def _partition(ctx: Ctx) -> None:
    ctx.state["cut"] = site_servers(ctx, ctx.leader_site)  # their view of the cluster is stale
    ctx.hit(*ctx.state["cut"])
    ctx.need_lab().partition(ctx.leader_site)


def _heal(ctx: Ctx) -> None:
    ctx.need_lab().heal(links=False)


def _blip(ctx: Ctx) -> None:
    lab = ctx.need_lab()
    ctx.hit(ctx.leader)
    lab.partition(ctx.leader)
    time.sleep(BLIP_S)
    lab.heal(links=False)


def _redis_kill(ctx: Ctx) -> None:
    victim = redis_victim(ctx)
    ctx.state["victim"] = victim
    kill(ctx, [victim])


def _app_kill(ctx: Ctx) -> None:
    apps = [s.name for s in ctx.spec.servers_with_role("app") if s.site == ctx.leader_site] or \
        [s.name for s in ctx.spec.servers_with_role("app")]
    if not apps:
        raise DrillError("no app server to kill")
    ctx.state["victim"] = apps[0]
    ctx.hit(apps[0])
    code, _ = ctx.hosts.run(apps[0], f"systemctl kill -s KILL {APP_UNIT}", timeout=20)
    if code != 0:
        raise DrillError(f"{apps[0]}: systemctl kill {APP_UNIT} failed")


def _app_start(ctx: Ctx) -> None:
    ctx.hosts.run(ctx.state["victim"], f"systemctl start {APP_UNIT}", timeout=60)


def _vip_kill(ctx: Ctx) -> None:
    site = ctx.leader_site if ctx.leader_site in vips(ctx.spec) else sorted(vips(ctx.spec))[0]
    holder = vip_holder(ctx, site)
    ctx.state["victim"] = holder
    kill(ctx, [holder])


def _switchover(ctx: Ctx) -> None:
    members = patroni_members(ctx.spec, ctx.hosts)
    sync = [m["name"] for m in members if m.get("role") == "sync_standby"
            and m.get("state") in ("streaming", "running")]
    if not sync:
        raise DrillError("no streaming synchronous standby to switch over to")
    ctx.hit(ctx.leader, sync[0])
    code, out = ctx.hosts.run(ctx.leader, f"{PATRONICTL} switchover --leader {ctx.leader} "
                                          f"--candidate {sync[0]} --force", timeout=120)
    if code != 0:
        raise DrillError(f"patronictl switchover failed: {out.strip()[-200:]}")


def _sync_standby(ctx: Ctx) -> str:
    members = patroni_members(ctx.spec, ctx.hosts)
    sync = [m["name"] for m in members if m.get("role") == "sync_standby"]
    if not sync:
        raise DrillError("no synchronous standby to lose")
    return str(sync[0])


def _sync_standby_kill(ctx: Ctx) -> None:
    kill(ctx, [_sync_standby(ctx)])


def _standby_site_kill(ctx: Ctx) -> None:
    kill(ctx, site_servers(ctx, ctx.spec.server(_sync_standby(ctx)).site))


def _third_site(ctx: Ctx) -> str:
    """The site holding neither the leader nor the synchronous standby."""
    taken = {ctx.leader_site, ctx.spec.server(_sync_standby(ctx)).site}
    rest = [s.name for s in ctx.spec.sites if s.name not in taken and site_servers(ctx, s.name)]
    if not rest:
        raise DrillError("no third site: the leader's and the standby's are all there is")
    return rest[0]


def _third_site_kill(ctx: Ctx) -> None:
    kill(ctx, site_servers(ctx, _third_site(ctx)))


def _units(role_name: str) -> str:
    return " ".join(role(role_name).units)


def _stop_role(ctx: Ctx, role_name: str, servers: list[str]) -> None:
    """Stop a role's units (SIGKILL, no clean shutdown) on `servers`; they stay down (stopped,
    so systemd's Restart= does not bring them back) until the restore starts them."""
    ctx.state["stopped"] = (role_name, servers)
    ctx.hit(*servers)
    for h in servers:
        code, out = ctx.hosts.run(h, f"systemctl kill -s KILL {_units(role_name)}; "
                                     f"systemctl stop {_units(role_name)}", timeout=30)
        if code != 0:
            raise DrillError(f"{h}: stopping {role_name} failed: {out.strip()[-200:]}")


def _start_role(ctx: Ctx) -> None:
    role_name, servers = ctx.state.get("stopped", ("", []))
    for h in servers:
        ctx.hosts.run(h, f"systemctl start {_units(role_name)}", timeout=120)


def _etcd_quorum_loss(ctx: Ctx) -> None:
    """Two etcd members of three stopped (those off the leader's server when there is a
    choice): etcd has no quorum, Patroni cannot renew the leader key."""
    members = [s.name for s in ctx.spec.servers_with_role("etcd")]
    if len(members) < 2:
        raise DrillError("etcd has fewer than 2 members: no quorum to lose")
    need = len(members) - len(members) // 2  # a majority stopped: no quorum left
    victims = sorted(members, key=lambda n: (n == ctx.leader, n))[:need]
    _stop_role(ctx, "etcd", victims)


def _redis_site_loss(ctx: Ctx) -> None:
    """Every Redis node of a site holding a Redis master (not the leader's site when there is
    a choice) killed at once."""
    victim = redis_victim(ctx)
    site = ctx.spec.server(victim).site
    _stop_role(ctx, "redis", [s.name for s in ctx.spec.servers_with_role("redis")
                              if s.site == site])


def _worker_kill(ctx: Ctx) -> None:
    workers = [s.name for s in ctx.spec.servers_with_role("worker")]
    if not workers:
        raise DrillError("no worker server")
    ctx.state["victim"] = workers[0]
    ctx.hit(workers[0])
    code, out = ctx.hosts.run(workers[0], f"systemctl kill -s KILL {_units('worker')}",
                              timeout=20)
    if code != 0:
        raise DrillError(f"{workers[0]}: killing the workers failed: {out.strip()[-200:]}")


def _worker_start(ctx: Ctx) -> None:
    ctx.hosts.run(ctx.state["victim"], f"systemctl start {_units('worker')}", timeout=60)


def _media_kill(ctx: Ctx) -> None:
    media = [s.name for s in ctx.spec.servers_with_role("media") if s.name != ctx.leader]
    if not media:
        raise DrillError("no media server outside the PostgreSQL leader's")
    kill(ctx, [media[0]])


SLOW_MS, SLOW_LOSS_PCT, SLOW_HOLD_S = 200.0, 5.0, 30.0


def _slow_link(ctx: Ctx) -> None:
    """The link between the leader's site and the standby's: 200 ms and 5 % loss each way."""
    lab = ctx.need_lab()
    other = ctx.spec.server(_sync_standby(ctx)).site
    ctx.hit(f"link {ctx.leader_site}-{other}")
    lab.slow(f"{ctx.leader_site}-{other}", SLOW_MS, SLOW_LOSS_PCT)


def _heal_links(ctx: Ctx) -> None:
    ctx.need_lab().heal(links=True)


# How long a restarted member may take to run again before the drill gives up on it. The old
# leader rejoins by pg_rewind from the new primary, which copies the new primary's WAL: 39-130 s
# on the lab (userspace WireGuard on 2 loaded cores), so 120 s cut a long `--all` run short.
RESTART_LIMIT_S = 300.0


def _rolling_restart(ctx: Ctx) -> None:
    """Every member restarted in turn for maintenance (replicas first, each waited for), the
    leader last by a switchover to the synchronous standby then a restart: planned."""
    members = patroni_members(ctx.spec, ctx.hosts)
    roles = {m["name"]: str(m.get("role", "")) for m in members}
    order = sorted(m["name"] for m in members if m.get("role") != "leader") + [ctx.leader]
    # when each member was down, to tell which requests a failure belongs to (epoch seconds,
    # as the drill's events)
    restarts: list[dict[str, Any]] = []
    ctx.state.setdefault("details", {})["restarts"] = restarts
    for name in order:
        if name == ctx.leader:
            _switchover(ctx)
        ctx.hit(name)
        started = time.time()
        code, out = ctx.hosts.run(name, f"{PATRONICTL} restart {ctx.spec.name} {name} --force",
                                  timeout=180)
        if code != 0:
            raise DrillError(f"patronictl restart {name} failed: {out.strip()[-200:]}")
        running = _wait_running(ctx, name, RESTART_LIMIT_S)
        restarts.append({"member": name, "was": roles.get(name, ""), "started": round(started, 3),
                         "running_after_s": round(time.time() - started, 1) if running else None})
        if not running:
            raise DrillError(f"{name} did not run again within {RESTART_LIMIT_S:.0f} s of its "
                             "restart (journalctl -u patroni on it says why)")


def _wait_running(ctx: Ctx, name: str, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        rows = {m.get("name"): m for m in patroni_members(ctx.spec, ctx.hosts)}
        if rows.get(name, {}).get("state") in ("running", "streaming"):
            return True
        time.sleep(1)
    return False


ARCHIVE_LIMIT_S = 120.0  # a switched segment reaches the other repository within this


def _repositories(ctx: Ctx) -> tuple[Server, Server]:
    """(the first pgBackRest repository's host, the other one's)."""
    try:
        repos = repo_hosts(ctx.spec)
    except BackupConfigError as e:
        raise DrillError(str(e)) from None
    if len(repos) < 2:
        raise DrillError("one pgBackRest repository only: losing its site leaves WAL nowhere "
                         "to go — give a backup server in a second site (roles.backup)")
    return repos[0], repos[1]


def _backup_site_kill(ctx: Ctx) -> None:
    first, _ = _repositories(ctx)
    kill(ctx, site_servers(ctx, first.site))


def _archive_goes_on(ctx: Ctx) -> None:
    """With the first repository's site down: a WAL segment switched on the (current) primary
    reaches the other repository."""
    first, other = _repositories(ctx)
    gone = set(ctx.state.get("down", []))
    now = leader(patroni_members(ctx.spec, ctx.hosts, exclude=gone))
    name = "WAL archived to the other repository"
    if now is None:
        ctx.state.setdefault("checks", {})[name] = False
        ctx.state.setdefault("notes", {})[name] = "no PostgreSQL leader to switch a segment on"
        return
    got = wal_reaches(ctx.hosts, now, [other.name], limit_s=ARCHIVE_LIMIT_S)
    ctx.state.setdefault("checks", {})[name] = got.ok
    ctx.state.setdefault("notes", {})[name] = (
        f"{got.segment} on {now} reached repo2 {other.name} in {got.seconds:.1f} s"
        if got.ok else f"{got.segment or 'no segment'} on {now} not in repo2 {other.name}'s "
        f"archive within {ARCHIVE_LIMIT_S:.0f} s (newest there: {got.archived})")
    ctx.state.setdefault("details", {})["archive_while_down"] = {
        **got.to_doc(), "dead_repository": f"repo1 {first.name}", "primary": now}


def _surviving_repo(ctx: Ctx) -> list[str]:
    return [_repositories(ctx)[1].name]


def _nothing(ctx: Ctx) -> None:
    return None


def _leader_site(ctx: Ctx) -> set[str]:
    return {ctx.leader_site}


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("leader-kill", "power loss of the PostgreSQL leader's server", _leader_kill,
             start_again, SERVER_TARGET_S, True, min_hold_s=5),
    Scenario("leader-shutdown", "clean shutdown of the PostgreSQL leader's server", _leader_stop,
             start_again, SERVER_TARGET_S, True, min_hold_s=5),
    Scenario("site-kill", "power loss of the whole site holding the leader", _site_kill,
             start_again, SITE_TARGET_S, True, min_hold_s=5, down_sites=_leader_site),
    Scenario("site-partition", "the leader's site cut off from the other two", _partition,
             _heal, SITE_TARGET_S, True, min_hold_s=5, down_sites=_leader_site),
    Scenario("redis-master-kill", "power loss of a Redis master's server", _redis_kill,
             start_again, SERVER_TARGET_S, False, min_hold_s=10),
    Scenario("app-kill", "an app server's process killed under load", _app_kill, _app_start,
             SERVER_TARGET_S, False, min_hold_s=10, max_hold_s=30),
    Scenario("vip-holder-kill", "power loss of the server holding a site's virtual IP",
             _vip_kill, start_again, SERVER_TARGET_S, False, min_hold_s=10),
    Scenario("blip", f"the leader's server cut off for {BLIP_S:.0f} s (must not fail over)",
             _blip, _nothing, SERVER_TARGET_S, False, min_hold_s=25, max_hold_s=30),
    Scenario("switchover", "planned switchover to the synchronous standby", _switchover,
             _nothing, SERVER_TARGET_S, True, planned=True, min_hold_s=5, max_hold_s=60),
    Scenario("sync-standby-kill", "power loss of the synchronous standby's server (writes go "
             "on)", _sync_standby_kill, start_again, SERVER_TARGET_S, False, min_hold_s=20),
    Scenario("standby-site-kill", "power loss of the whole site holding the synchronous "
             "standby", _standby_site_kill, start_again, SITE_TARGET_S, False, min_hold_s=20,
             down_sites=lambda ctx: {ctx.spec.server(_sync_standby(ctx)).site}),
    Scenario("third-site-kill", "power loss of the site holding neither the leader nor the "
             "standby", _third_site_kill, start_again, SITE_TARGET_S, False, min_hold_s=20,
             down_sites=lambda ctx: {_third_site(ctx)}),
    Scenario("etcd-quorum-loss", "etcd loses its quorum (a majority of members stopped)",
             _etcd_quorum_loss, _start_role, SERVER_TARGET_S, False, min_hold_s=30,
             max_hold_s=60),
    Scenario("redis-site-loss", "every Redis node of one site killed", _redis_site_loss,
             _start_role, SERVER_TARGET_S, False, min_hold_s=15),
    Scenario("worker-kill", "the workers of a server killed mid-batch (no follower misses a "
             "post)", _worker_kill, _worker_start, SERVER_TARGET_S, False, min_hold_s=10,
             max_hold_s=30, followers=True),
    Scenario("media-kill", "power loss of a media (SeaweedFS) server (every image still "
             "readable)", _media_kill, start_again, SERVER_TARGET_S, False, min_hold_s=15,
             media=True),
    Scenario("slow-link", f"{SLOW_MS:.0f} ms and {SLOW_LOSS_PCT:.0f} % loss between the "
             "leader's and the standby's sites", _slow_link, _heal_links, SERVER_TARGET_S, False,
             min_hold_s=SLOW_HOLD_S, max_hold_s=SLOW_HOLD_S + 5, report_latency=True),
    # no failed request: a planned maintenance is invisible to users or it is not done right;
    # a 503 with Retry-After is still a request the user's app has to show or redo, so nothing
    # but 2xx is allowed (the issue: "no failed request")
    Scenario("rolling-restart", "every PostgreSQL member restarted in turn (maintenance)",
             _rolling_restart, _nothing, SERVER_TARGET_S, None, planned=True, min_hold_s=5,
             max_hold_s=60, no_failed_request=True),
    Scenario("backup-site-kill", "power loss of the site holding the first backup repository "
             "(archiving goes on to the other)", _backup_site_kill, start_again, SITE_TARGET_S,
             None, min_hold_s=20, down_sites=lambda ctx: {_repositories(ctx)[0].site},
             during=_archive_goes_on, archive_repos=_surviving_repo),
)}


def current_leader(spec: ClusterSpec, hosts: Hosts) -> str:
    got = leader(patroni_members(spec, hosts))
    if got is None:
        raise DrillError("the cluster has no PostgreSQL leader now: nothing to drill")
    return got
