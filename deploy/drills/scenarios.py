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
)
from freehold.deploy.spec import ClusterSpec
from freehold.roles.app.config import APP_UNIT
from freehold.roles.lb.config import site_lbs, vips
from freehold.roles.postgres.config import PATRONICTL

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
    lab.stop(ctx.leader)


def _site_kill(ctx: Ctx) -> None:
    kill(ctx, site_servers(ctx, ctx.leader_site))


def _partition(ctx: Ctx) -> None:
    ctx.need_lab().partition(ctx.leader_site)


def _heal(ctx: Ctx) -> None:
    ctx.need_lab().heal(links=False)


def _blip(ctx: Ctx) -> None:
    lab = ctx.need_lab()
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
    code, out = ctx.hosts.run(ctx.leader, f"{PATRONICTL} switchover --leader {ctx.leader} "
                                          f"--candidate {sync[0]} --force", timeout=120)
    if code != 0:
        raise DrillError(f"patronictl switchover failed: {out.strip()[-200:]}")


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
)}


def current_leader(spec: ClusterSpec, hosts: Hosts) -> str:
    got = leader(patroni_members(spec, hosts))
    if got is None:
        raise DrillError("the cluster has no PostgreSQL leader now: nothing to drill")
    return got
