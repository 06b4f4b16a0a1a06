"""What a plan has left after losing its biggest site, and after losing each provider: per role,
the servers left and a verdict (does it still carry the planned peak, does it keep quorum).

- app, worker, lb: the cores left against the cores the role needs at the planned peak
  (the worker on the app servers: app and worker cores together);
- postgres: the readers left (members but the new primary) against its read cores, and the
  synchronous standby's site not lost with the primary's (Patroni promotes only it);
- redis: the placement rules' verdict on the plan's own layout (every shard keeps a node, a
  master majority is left to vote the failovers);
- etcd: a raft majority left; media: fewer failure domains lost than a volume has copies;
- pgbouncer, dns, monitoring, backup: at least one left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from freehold.deploy.capacity.packing import redis_lost_reasons

if TYPE_CHECKING:
    from freehold.deploy.capacity.model import Profile, RoleNeed


def scenarios(prof: Profile, roles: Mapping[str, RoleNeed]) -> list[tuple[str, set[str]]]:
    """(what is lost, its sites): the site with the most production servers, then each
    provider."""
    lay = prof.layout
    own = {s: sum(r.per_site.get(s, 0) for r in roles.values() if r.own)
           for s in lay.site_names}
    biggest = max(lay.site_names, key=lambda s: (own[s], -lay.site_names.index(s)))
    out = [(f"site {biggest} (biggest, {own[biggest]} servers)", {biggest})]
    for prov, _ in lay.providers:
        sites = {s.name for s in lay.sites if s.provider == prov}
        out.append((f"provider {prov} ({len(sites)} site{'s' if len(sites) > 1 else ''})",
                    sites))
    return out


def _left(r: RoleNeed, lost: set[str]) -> int:
    return r.servers - sum(n for s, n in r.per_site.items() if s in lost)


def _cores(prof: Profile, r: RoleNeed, left: int, need: float, what: str = ""
           ) -> tuple[bool, str]:
    cores = prof.cls(r.role).cores
    have = left * cores
    ok = have + 1e-9 >= need
    more = math.ceil(need / cores - 1e-9) - left
    share = (f"{have / need:.0%} of the peak, {more} more server{'s' if more > 1 else ''} "
             "there would carry it" if need and not ok else "carries the peak")
    return ok, f"{have} of {need:,.1f} cores{what}: {share}"


def role_verdict(prof: Profile, roles: Mapping[str, RoleNeed], role: str, lost: set[str]
                 ) -> tuple[bool, str]:
    r, lay = roles[role], prof.layout
    left = _left(r, lost)
    if role == "app":
        worker = roles.get("worker")
        hosted = worker is not None and "app" in worker.on
        return _cores(prof, r, left, r.cores or 0, " (with the worker)" if hosted else "")
    if role == "worker" and "app" in r.on:
        ok, _ = role_verdict(prof, roles, "app", lost)
        return ok, "on the app servers: " + ("carries the peak" if ok else "short with them")
    if role in ("worker", "lb"):
        return _cores(prof, r, left, r.cores or 0)
    if role == "postgres":
        if lay.primary_site in lost and lay.standby_site in lost:
            return False, "primary and synchronous standby sites lost together"
        readers = max(0, left - 1)
        ok, text = _cores(prof, r, readers, r.cores or 0, " read")
        return ok and left > 0, f"{readers} readers, {text}"
    if role == "redis":
        why = redis_lost_reasons(lay, r.per_site, r.masters, int(prof.v("redis_replicas")),
                                 r.nodes_per_server, lost)
        return (not why, why[0] if why else
                f"{left * r.nodes_per_server} of {r.servers * r.nodes_per_server} nodes: every "
                "shard served, majority votes")
    if role == "etcd":
        ok = left * 2 > r.servers
        return ok, "quorum kept" if ok else "quorum lost"
    if role == "media":
        copies = int(prof.v("media_copies"))
        sites = [s for s, n in r.per_site.items() if n]
        provs = {lay.provider_of(s) for s in sites}
        domain = "provider" if len(provs) >= copies else "site"
        lost_domains = {lay.provider_of(s) if domain == "provider" else s
                        for s in sites if s in lost}
        ok = len(lost_domains) < copies and left > 0
        return ok, (f"a copy of every volume left ({copies} copies in distinct {domain}s)"
                    if ok else f"volumes in {len(lost_domains)} lost {domain}s")
    return left > 0, "one or more left" if left else "none left"


def losses(prof: Profile, roles: Mapping[str, RoleNeed]) -> list[dict[str, Any]]:
    out = []
    for what, lost in scenarios(prof, roles):
        rows: dict[str, Any] = {}
        for role, r in roles.items():
            if not r.production:
                continue
            ok, note = role_verdict(prof, roles, role, lost)
            rows[role] = {"left": _left(r, lost), "of": r.servers, "ok": ok, "note": note}
        short = [role for role, row in rows.items() if not row["ok"]]
        verdict = ("carries the planned peak" if not short else
                   "does NOT carry the planned peak: " + "; ".join(
                       f"{role} {rows[role]['left']}/{rows[role]['of']} ({rows[role]['note']})"
                       for role in short))
        out.append({"lost": what, "sites": sorted(lost), "roles": rows, "ok": not short,
                    "verdict": verdict})
    return out


def loss_lines(found: list[dict[str, Any]]) -> list[str]:
    """One line per scenario: what is left per role and the verdict."""
    return [f"losing {d['lost']} leaves " + ", ".join(
        f"{role} {row['left']}/{row['of']}" for role, row in d["roles"].items())
        + f" — {d['verdict']}" for d in found]
