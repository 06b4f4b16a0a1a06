"""Patroni over SSH (Fabric): cluster state and planned switchover.

Every call goes to one reachable PostgreSQL member and runs `patronictl` there as the
`postgres` user with the member's own config (which holds the REST API credentials, 0600), so
no password crosses a command line.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.ssh import HostKeyError, SSHSettings, connection
from freehold.roles.postgres.config import PATRONICTL, REST_PORT


class PatroniError(Exception):
    pass


def members_list(spec: ClusterSpec, ssh: SSHSettings) -> tuple[Server, list[dict[str, Any]]]:
    """(the member asked, `patronictl list` rows) from the first member that answers."""
    errors = []
    for server in spec.servers_with_role("postgres"):
        try:
            with connection(server, ssh) as conn:
                out = conn.run(f"{PATRONICTL} list -f json", hide=True, warn=True, timeout=30)
        except HostKeyError:  # refused: never fall back to another member silently
            raise
        except Exception as e:  # noqa: BLE001 - unreachable member: try the next one
            errors.append(f"{server.name}: {type(e).__name__}: {e}")
            continue
        if out.ok:
            return server, json.loads(out.stdout or "[]")
        errors.append(f"{server.name}: {out.stderr.strip()[-200:]}")
    raise PatroniError("no PostgreSQL member answered: " + "; ".join(errors))


def cluster_members(spec: ClusterSpec, run: Callable[[str, str], tuple[int, str]],
                    exclude: set[str] | frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Patroni's /cluster members (REST API), asked of the first member not excluded that
    answers; `run(server, command)` gives (exit code, stdout) on that server. [] when none."""
    for m in spec.servers_with_role("postgres"):
        if m.name in exclude:
            continue
        code, out = run(m.name, f"curl -fsS --max-time 3 "
                                f"http://{m.mesh_address}:{REST_PORT}/cluster")
        if code == 0:
            with contextlib.suppress(ValueError):
                return list(json.loads(out).get("members", []))
    return []


def leader_of(rows: list[dict[str, Any]]) -> str | None:
    for row in rows:
        if row.get("Role") in ("Leader", "Standby Leader"):
            return str(row["Member"])
    return None


def member_states(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(name, role, state) per member, from `patronictl list` rows ("Member", "Role": "Sync
    Standby") or the REST API's /cluster members ("name", "role": "sync_standby")."""
    return [(str(r.get("Member", r.get("name"))), str(r.get("Role", r.get("role", ""))),
             str(r.get("State", r.get("state", "")))) for r in rows]


def protected(rows: list[dict[str, Any]]) -> bool:
    """A leader runs and a synchronous standby streams from it: in synchronous mode only that
    standby may be promoted, so until one streams a dead primary is replaced by nobody.
    `rows` from `patronictl list` or from the REST API's /cluster."""
    states = [(role.lower().replace(" ", "_"), state) for _, role, state in member_states(rows)]
    return any(role in ("leader", "standby_leader") for role, _ in states) and any(
        role == "sync_standby" and state in ("streaming", "running") for role, state in states)


def summary(rows: list[dict[str, Any]]) -> str:
    """`a1 Leader running, b1 Sync Standby streaming` (for one-line errors)."""
    return ", ".join(" ".join(m) for m in member_states(rows)) or "no members"


def pick_candidate(spec: ClusterSpec, rows: list[dict[str, Any]], to: str | None) -> str:
    """`to` when it is a running replica; else the synchronous standby; else the replica with
    the least lag outside the leader's site."""
    leader = leader_of(rows)
    running = [r for r in rows if r.get("Member") != leader
               and r.get("State") in ("running", "streaming")]
    names = {str(r["Member"]) for r in running}
    if to:
        if to == leader:
            raise PatroniError(f"--to {to}: it is already the leader")
        if to not in names:
            raise PatroniError(f"--to {to}: not a running replica (running replicas: "
                               f"{', '.join(sorted(names)) or 'none'})")
        return to
    sync = [r for r in running if r.get("Role") == "Sync Standby"]
    if sync:
        return str(sync[0]["Member"])
    if not running:
        raise PatroniError("no running replica to switch over to")
    leader_site = spec.server(leader).site if leader else None

    def key(r: dict[str, Any]) -> tuple[int, float]:
        lag = r.get("Lag in MB")
        return (int(spec.server(str(r["Member"])).site == leader_site),
                float(lag) if isinstance(lag, int | float) else 1e9)

    return str(min(running, key=key)["Member"])


def switchover(spec: ClusterSpec, ssh: SSHSettings, to: str | None = None,
               timeout: float = 90.0) -> dict[str, Any]:
    """Planned switchover; waits (bounded) until the candidate leads, the old leader runs as a
    replica and a synchronous standby streams again (the cluster survives the next failure).
    Returns {"from", "to", "seconds", "before", "after"}."""
    asked, before = members_list(spec, ssh)
    leader = leader_of(before)
    if leader is None:
        raise PatroniError("the cluster has no leader now — a switchover needs one")
    candidate = pick_candidate(spec, before, to)
    started = time.monotonic()
    with connection(asked, ssh) as conn:
        out = conn.run(f"{PATRONICTL} switchover --leader {leader} --candidate {candidate} "
                       "--force", hide=True, warn=True, timeout=120)
    if not out.ok:
        raise PatroniError(f"patronictl switchover failed: "
                           f"{(out.stderr or out.stdout).strip()[-300:]}")
    deadline = started + timeout
    after: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        _, after = members_list(spec, ssh)
        old = [r for r in after if r.get("Member") == leader]
        if (leader_of(after) == candidate and old
                and old[0].get("State") in ("running", "streaming") and protected(after)):
            break
        time.sleep(1)
    else:
        raise PatroniError(f"{candidate} did not become leader with {leader} running as a "
                           f"replica and a synchronous standby streaming within "
                           f"{timeout:.0f} s: {summary(after)}")
    return {"from": leader, "to": candidate, "seconds": round(time.monotonic() - started, 1),
            "before": before, "after": after}
