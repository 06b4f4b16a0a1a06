"""`freehold failover`: planned switchover of the database primary (issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    SpecArg,
    console,
    err_console,
    fail,
    load_cluster,
    print_json,
)
from freehold.deploy.cli.deploy_cmd import ssh_settings
from freehold.deploy.provision.patroni import PatroniError, switchover
from freehold.deploy.ssh import HostKeyError


def members_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("Member", "Host", "Role", "State", "TL", "Lag in MB"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in ("Member", "Host", "Role", "State", "TL",
                                                      "Lag in MB")))
    return table


def primary_member(cluster: Any) -> str:
    """The first postgres member of roles.postgres.primary_site (where the leader belongs)."""
    from freehold.deploy.spec.placement import postgres_primary_site
    from freehold.roles.postgres.config import primary_site_member

    found = primary_site_member(cluster)
    if found is not None:
        return found
    site = postgres_primary_site(cluster)
    fail(f"roles.postgres.primary_site {site}: no postgres member there — set it to a site "
         "with one")


def failover(
    spec: SpecArg = DEFAULT_SPEC,
    to: str | None = typer.Option(None, "--to", help="Candidate server."),
    back: bool = typer.Option(False, "--back", help="Back to roles.postgres.primary_site "
                              "(its first postgres member)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_key: Path | None = typer.Option(None, "--ssh-key", help="Private key for SSH."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="known_hosts file."),
) -> None:
    """Switch the PostgreSQL primary over to another member."""
    cluster = load_cluster(spec)
    if not cluster.servers_with_role("postgres"):
        fail(f"{spec}: no server has the postgres role — nothing to switch over")
    if to is not None and to not in {s.name for s in cluster.servers_with_role("postgres")}:
        fail(f"--to {to}: not a postgres member of {cluster.name} — give one of "
             f"{', '.join(s.name for s in cluster.servers_with_role('postgres'))}")
    if back:
        if to is not None:
            fail("give --to or --back, not both")
        to = primary_member(cluster)
    ssh = ssh_settings(spec, cluster, ssh_key, known_hosts)
    if back:
        from freehold.deploy.drills.runner import switch_back
        from freehold.deploy.drills.watch import SshHosts

        out = err_console if json_out else console
        with out.status("switching back…"):
            moved = switch_back(cluster, SshHosts(cluster, ssh))
        if json_out:
            print_json(moved or {"to": to, "moved": False})
        elif moved is None:
            console.print(f"the leader is in the primary site already ({to})", highlight=False)
        else:
            console.print(f"primary moved {moved['from']} → {moved['to']} in "
                          f"{moved['seconds']} s", highlight=False)
        if moved is not None and not moved["ok"]:
            fail(f"switching back to {to} failed: {moved['output']}", code=1)
        return
    out = err_console if json_out else console
    try:
        with out.status("switching over…"):
            result = switchover(cluster, ssh, to)
    except (PatroniError, HostKeyError) as e:
        fail(str(e), code=1)
    if json_out:
        print_json(result)
        return
    console.print(members_table("before", result["before"]))
    console.print(members_table("after", result["after"]))
    console.print(f"primary moved {result['from']} → {result['to']} in {result['seconds']} s",
                  highlight=False)
