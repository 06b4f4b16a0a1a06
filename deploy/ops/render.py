"""The on-call screen: `freehold status` as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from freehold.deploy.ops.status import (
    DEGRADED,
    DOWN,
    NOT_DEPLOYED,
    OK,
    StatusReport,
    summarize,
)

STYLE = {OK: "green", DEGRADED: "yellow", DOWN: "red", NOT_DEPLOYED: "dim"}


def _state(state: str) -> str:
    return f"[{STYLE.get(state, 'white')}]{state}[/]"


def _count(n: int, state: str) -> str:
    return f"[{STYLE[state]}]{n}[/]" if n else "0"


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(_cell(r.get(c)) for c in columns))
    return t


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


ALL_SERVERS_UP_TO = 40     # past this many servers, only the unhealthy ones are listed


def _via(row: dict[str, Any]) -> str:
    """`ssh`, or `prometheus (a2, 4 s)`: who saw the server up, how long ago."""
    if row.get("via") != "prometheus":
        return row.get("via") or "ssh"
    age = row.get("seen_s")
    return f"prometheus ({row.get('seen_by')}, {'?' if age is None else f'{age:.0f}'} s)"


def _why(row: dict[str, Any]) -> str:
    """The row's error, and for a server down over SSH what Prometheus last saw of it."""
    error = row.get("error") or ""
    if not row["up"] and row.get("prometheus"):
        return f"{error}; {row['prometheus']}" if error else row["prometheus"]
    return error


def show(report: StatusReport, console: Console, all_servers: bool | None = None) -> None:
    """Verdict, counts per site and per role, the servers (unhealthy first; at scale only
    those unless `all_servers`), components and their details."""
    summary = summarize(report.servers)
    verdict = _state(OK) if report.ok else "[red]DEGRADED[/]"
    console.print(f"[bold]{report.spec}[/]: {verdict}  {summary['up']}/{summary['servers']} "
                  f"servers up, {len(summary['unhealthy'])} unhealthy  ({report.seconds:.1f} s)")
    via = summary["via"]
    if via.get("prometheus"):
        console.print(f"judged by Prometheus over the mesh: {via['prometheus']} servers; "
                      f"probed over SSH: {via.get('ssh', 0)} (--deep probes every server)")
    t = Table(title="per site", title_justify="left", show_edge=False)
    for col in ("site", "servers", "up", "down", "unhealthy"):
        t.add_column(col, justify="left" if col == "site" else "right")
    for site, c in summary["sites"].items():
        t.add_row(site, str(c["servers"]), str(c["up"]), _count(c["down"], DOWN),
                  _count(c["unhealthy"], DOWN))
    console.print(t)
    t = Table(title="per role", title_justify="left", show_edge=False)
    for col in ("role", "servers", OK, DOWN, NOT_DEPLOYED):
        t.add_column(col, justify="left" if col == "role" else "right")
    for role, c in summary["roles"].items():
        t.add_row(role, str(c["servers"]), str(c[OK]), _count(c[DOWN], DOWN),
                  _count(c[NOT_DEPLOYED], NOT_DEPLOYED))
    console.print(t)
    if all_servers is None:
        all_servers = len(report.servers) <= ALL_SERVERS_UP_TO
    rows = report.servers if all_servers else report.unhealthy
    if rows:
        title = ("servers, unhealthy first" if all_servers else
                 f"unhealthy servers ({len(rows)} of {len(report.servers)}; --all lists every "
                 "server)")
        t = Table(title=f"{title} (role names coloured by state; dim = not deployed)",
                  title_justify="left", show_edge=False)
        for col in ("server", "site", "up", "via", "roles", "error"):
            t.add_column(col)
        for s in rows:
            roles = " ".join(f"[{STYLE.get(state, 'white')}]{role}[/]"
                             for role, state in s["roles"].items())
            t.add_row(s["server"], s["site"], _state(OK) if s["up"] else _state(DOWN),
                      _via(s), roles, _why(s))
        console.print(t)
    t = Table(title="components", title_justify="left", show_edge=False)
    t.add_column("component")
    t.add_column("state")
    t.add_column("problems")
    for name, c in report.components.items():
        t.add_row(name, _state(c.state), "; ".join(c.problems[:4]) +
                  (f" (+{len(c.problems) - 4})" if len(c.problems) > 4 else ""))
    console.print(t)
    for note in report.notes:
        console.print(f"[cyan]note[/] {note}")
    details = {
        "patroni": ["member", "role", "state", "timeline", "lag_mb"],
        "etcd health": ["member", "healthy", "reason"],
        "redis cluster": ["node", "cluster_state", "slots_ok", "known_nodes"],
        "haproxy": ["lb", "backend", "server", "status"],
        "app": ["server", "release", "readyz"],
        "queues": ["stream", "group", "pending", "lag", "consumers"],
        "alerts": ["alert", "severity", "instance", "since", "summary"],
        "backup": ["last", "type", "age_hours", "backups", "wal_max"],
        "dns": ["server", "serial", "healthy", "answers"],
        "prometheus": ["monitor", "answered", "node_targets", "error"],
    }
    for name, cols in details.items():
        c = report.components.get(name)
        if c is not None and c.rows:
            console.print(_table(name, c.rows, cols))
