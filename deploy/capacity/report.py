"""Rich tables of a capacity plan: inputs with sources, load, servers per role, storage, cost."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from freehold.deploy.capacity.model import CapacityPlan

TOP_ENDPOINTS = 8


def _n(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}"


def inputs_table(plan: CapacityPlan) -> tuple[Table, list[str]]:
    """The inputs with a footnote number per distinct source, and the footnotes in full."""
    t = Table(title=f"inputs ({plan.profile})", title_justify="left")
    for col in ("input", "value", "unit", "from", "source"):
        t.add_column(col, justify="right" if col in ("value", "source") else "left")
    notes: list[str] = []
    for i in plan.inputs:
        if i.source not in notes:
            notes.append(i.source)
        kind = "[green]measured[/green]" if i.kind == "measured" else "cited"
        t.add_row(i.name, _n(i.value), i.unit, kind, f"[{notes.index(i.source) + 1}]")
    return t, [f"[{k}] {src}" for k, src in enumerate(notes, start=1)]


def load_table(plan: CapacityPlan) -> Table:
    t = Table(title=f"load for {plan.accounts:,} accounts", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    surge = plan.planned_rps / plan.peak_rps if plan.peak_rps else 1
    rows = [("daily actives", plan.daily_actives), ("average req/s", plan.average_rps),
            ("peak req/s", plan.peak_rps),
            (f"planned peak req/s (x{surge:.3g} surge" +
             (f", headroom x{plan.headroom:g})" if plan.headroom != 1 else ")"),
             plan.planned_rps)]
    rows += [(k.replace("_", " ").replace(" per s", "/s"), v) for k, v in plan.rates.items()]
    for k, v in rows:
        t.add_row(k, _n(v))
    for name, rps in plan.endpoints[:TOP_ENDPOINTS]:
        t.add_row(f"  {name}", _n(rps))
    rest = plan.endpoints[TOP_ENDPOINTS:]
    if rest:
        t.add_row(f"  {len(rest)} more endpoints", _n(sum(r for _, r in rest)))
    return t


def roles_table(plan: CapacityPlan) -> Table:
    t = Table(title=f"servers per role: {plan.total_servers} production servers "
                    "(co-located roles and load generators add none)", title_justify="left")
    t.add_column("role")
    t.add_column("servers", justify="right")
    t.add_column("own", justify="right")
    t.add_column("class")
    t.add_column("per site")
    t.add_column("how", overflow="fold")
    for r in plan.roles.values():
        sites = " ".join(f"{s}:{n}" for s, n in r.per_site.items() if n)
        how = r.basis
        if r.on:
            hosts = " + ".join(f"{role} ({' '.join(f'{s}:{n}' for s, n in c.items() if n)})"
                               for role, c in r.on.items())
            how += f". CO-LOCATED on {hosts}: {r.why}"
        own = str(r.own) if r.production else "—"
        count = str(r.servers) + (f" x {r.nodes_per_server} nodes" if r.nodes_per_server > 1
                                  else "")
        t.add_row(r.role, count, own, r.server_class, sites, how)
    return t


def losses_table(plan: CapacityPlan) -> Table | None:
    """Servers left per role after each loss, with the verdict."""
    if not plan.losses:
        return None
    t = Table(title="what is left after a loss (servers left / planned; ✗ = short)",
              title_justify="left")
    t.add_column("role")
    for d in plan.losses:
        t.add_column(f"lose {d['lost']}", justify="right")
    for role in plan.losses[0]["roles"]:
        cells = []
        for d in plan.losses:
            row = d["roles"][role]
            cells.append(f"{row['left']}/{row['of']}" + ("" if row["ok"] else " ✗"))
        t.add_row(role, *cells)
    t.add_row("[bold]verdict[/bold]", *("carries the peak" if d["ok"] else "[red]short[/red]"
                                        for d in plan.losses))
    return t


def storage_table(plan: CapacityPlan) -> Table:
    s = plan.storage
    t = Table(title="storage", title_justify="left")
    for col in ("store", "now", f"at {s['horizon_months']:g} months", "growth / month",
                "per unit"):
        t.add_column(col, justify="right" if col != "store" else "left")
    t.add_row("PostgreSQL", f"{s['pg_gb_now']:,.0f} GB", f"{s['pg_gb_at_horizon']:,.0f} GB",
              f"{s['pg_gb_per_month']:,.0f} GB",
              f"{s['pg_bytes_per_post']:,.0f} B/post, {s['pg_bytes_per_account']:,.0f} B/account")
    t.add_row("Redis (timelines, sessions)", f"{s['redis_gib']:,.1f} GiB", "", "",
              f"{s['redis_bytes_per_timeline_entry']:.1f} B per timeline entry, "
              f"{s['redis_cached_timelines']:,.0f} timelines")
    t.add_row("media", f"{s['media_tb_now']:,.1f} TB", f"{s['media_tb_at_horizon']:,.1f} TB",
              f"{s['media_tb_per_month']:,.1f} TB",
              f"{s['media_bytes_per_post']:,.0f} B/post")
    t.add_row("backups", "", f"{s['backup_tb']:,.1f} TB", "", "")
    return t


def cost_table(plan: CapacityPlan) -> Table | None:
    if not plan.cost:
        return None
    c = plan.cost
    t = Table(title=f"cost per month: {c['per_month']:,.0f} {c['currency']}",
              title_justify="left")
    for col in ("class", "servers", "price", "per month"):
        t.add_column(col, justify="right" if col != "class" else "left")
    t.add_column("price source", overflow="fold")
    for name, e in c["by_class"].items():
        t.add_row(name, str(e["servers"]), f"{e['price_per_month']:,.0f}",
                  f"{e['per_month']:,.0f}", e["source"])
    return t


def compare_table(plans: list[CapacityPlan]) -> Table:
    t = Table(title="compare", title_justify="left")
    t.add_column("role")
    for p in plans:
        t.add_column(f"{p.accounts:,}", justify="right")
    for role in plans[0].roles:
        t.add_row(role, *(str(p.roles[role].servers) for p in plans))
    t.add_row("[bold]servers[/bold]", *(f"[bold]{p.total_servers}[/bold]" for p in plans))
    t.add_row("planned peak req/s", *(_n(p.planned_rps) for p in plans))
    if all(p.cost for p in plans):
        t.add_row("cost / month", *(f"{p.cost['per_month']:,.0f} {p.cost['currency']}"
                                    for p in plans if p.cost))
    return t


def print_plan(console: Console, plan: CapacityPlan, *, with_inputs: bool = True) -> None:
    if with_inputs:
        table, sources = inputs_table(plan)
        console.print(table)
        for line in sources:
            console.print(line, highlight=False)
    console.print(load_table(plan))
    console.print(roles_table(plan))
    losses = losses_table(plan)
    if losses is not None:
        console.print(losses)
    console.print(storage_table(plan))
    cost = cost_table(plan)
    if cost is not None:
        console.print(cost)
    for note in plan.notes:
        console.print(f"note: {note}", highlight=False)
