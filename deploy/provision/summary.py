"""The deploy's summary: a rich table per host and role, and the closing lines."""

from __future__ import annotations

from rich.table import Table

from freehold.deploy.provision.report import DeployReport

STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold red",
         "skipped": "dim"}


def summary_table(report: DeployReport) -> Table:
    verb = "would change" if report.dry_run else "changed"
    table = Table(title=f"freehold {'plan' if report.dry_run else 'deploy'} {report.spec}",
                  title_justify="left")
    table.add_column("host")
    table.add_column("role")
    table.add_column(verb, justify="right")
    table.add_column("unchanged", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("status")
    table.add_column("detail", overflow="fold", max_width=60)
    order = {h: i for i, h in enumerate(report.hosts)}
    roles = {r: i for i, r in enumerate(report.roles)}
    for r in sorted(report.results, key=lambda r: (order.get(r.host, 0), roles.get(r.role, 0))):
        detail = r.error if r.error else ("; ".join(r.changes[:3]) +
                                          (" …" if len(r.changes) > 3 else ""))
        table.add_row(r.host, r.role, str(r.changed), str(r.unchanged), str(r.failed),
                      f"[{STYLE.get(r.status, '')}]{r.status}[/]", detail)
    return table


def closing_lines(report: DeployReport, spec_path: str) -> list[str]:
    hosts = len(report.hosts)
    what = "would change" if report.dry_run else "changed"
    lines = [f"{report.changed} operation(s) {what} on {hosts} server(s) in "
             f"{report.seconds:.0f} s"]
    if report.stopped:
        lines.append(report.stopped)
    rerun = report.rerun_hosts()
    if rerun:
        lines.append(f"failed or skipped: {', '.join(rerun)} — once they are reachable, re-run: "
                     f"freehold deploy {spec_path} --limit {','.join(rerun)} --yes")
    return lines
