"""The on-call screen: `freehold status` as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from freehold.deploy.ops.status import DEGRADED, DOWN, NOT_DEPLOYED, OK, StatusReport

STYLE = {OK: "green", DEGRADED: "yellow", DOWN: "red", NOT_DEPLOYED: "dim"}


def _state(state: str) -> str:
    return f"[{STYLE.get(state, 'white')}]{state}[/]"


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("-" if r.get(c) is None else str(r.get(c)) for c in columns))
    return t


def show(report: StatusReport, console: Console) -> None:
    verdict = _state(OK) if report.ok else "[red]DEGRADED[/]"
    console.print(f"[bold]{report.spec}[/]: {verdict}  ({report.seconds:.1f} s)")
    t = Table(title="servers per site (role names coloured by state; dim = not deployed)",
              title_justify="left", show_edge=False)
    for col in ("site", "server", "up", "roles"):
        t.add_column(col)
    for s in sorted(report.servers, key=lambda s: (s["site"], s["server"])):
        roles = " ".join(f"[{STYLE.get(state, 'white')}]{role}[/]"
                         for role, state in s["roles"].items())
        t.add_row(s["site"], s["server"], _state(OK) if s["up"] else _state(DOWN), roles)
    console.print(t)
    t = Table(title="components", title_justify="left", show_edge=False)
    t.add_column("component")
    t.add_column("state")
    t.add_column("problems")
    for name, c in report.components.items():
        t.add_row(name, _state(c.state), "; ".join(c.problems[:4]) +
                  (f" (+{len(c.problems) - 4})" if len(c.problems) > 4 else ""))
    console.print(t)
    details = {
        "patroni": ["member", "role", "state", "timeline", "lag_mb"],
        "etcd health": ["member", "healthy", "reason"],
        "redis cluster": ["node", "cluster_state", "slots_ok", "known_nodes"],
        "haproxy": ["lb", "backend", "server", "status"],
        "app": ["server", "release", "readyz"],
        "queues": ["stream", "group", "pending", "lag", "consumers"],
        "alerts": ["alert", "severity", "instance", "since", "summary"],
        "backup": ["last", "type", "age_hours", "backups", "wal_max"],
    }
    for name, cols in details.items():
        c = report.components.get(name)
        if c is not None and c.rows:
            console.print(_table(name, c.rows, cols))
