"""`freehold backup`: backups and restore drills."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.deploy.cli.common import DEFAULT_SPEC, SpecArg

app = typer.Typer(help="Backups and restore drills.", no_args_is_help=True)


@app.command("restore-drill")
def restore_drill(
    spec: SpecArg = DEFAULT_SPEC,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_key: Path | None = typer.Option(None, "--ssh-key", help="Private key for SSH."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="known_hosts file."),
) -> None:
    """Restore the latest backup to a scratch server and check row counts (exit 1 when
    anything differs or fails)."""
    from freehold.deploy.cli.common import console, err_console, fail, load_cluster, print_json
    from freehold.deploy.cli.status_cmd import ssh_options
    from freehold.deploy.ops.restore_drill import run_drill
    from freehold.roles.backup.config import BackupConfigError, repo_host

    cluster = load_cluster(spec)
    try:
        repo_host(cluster)
    except BackupConfigError as e:
        fail(str(e))
    ssh = ssh_options(spec, cluster, ssh_key, known_hosts, 5.0)
    say = None if json_out else (lambda m: err_console.print(f"[dim]… {m}[/dim]"))
    report = run_drill(cluster, ssh, say)
    if json_out:
        print_json(report.to_doc())
    else:
        from rich.table import Table

        title = (f"restore drill: backup {report.backup or '-'} restored on "
                 f"{report.drill_server or '-'} to {report.restore_point or '-'}, "
                 f"compared with {report.primary or '-'}")
        t = Table(title=title, title_justify="left", show_edge=False)
        for col in ("database", "table", "primary", "restored", "match"):
            t.add_column(col)
        for r in report.tables:
            t.add_row(r["database"], r["table"], str(r["primary"]), str(r["restored"]),
                      "[green]yes[/]" if r["match"] else "[red]NO[/]")
        console.print(t)
        if report.error:
            err_console.print(f"[red]error:[/red] {report.error}", highlight=False)
        verdict = "[green]PASSED[/]" if report.ok else "[red]FAILED[/]"
        console.print(f"{verdict}: {len(report.tables)} tables, "
                      f"{sum(not r['match'] for r in report.tables)} differ; "
                      f"{report.seconds.get('total', 0)} s")
    raise typer.Exit(0 if report.ok else 1)
