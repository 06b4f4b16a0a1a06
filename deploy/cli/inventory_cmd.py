"""`freehold inventory`: read and check cluster specs (issue 2)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    SpecArg,
    console,
    err_console,
    load_cluster,
    print_json,
)
from freehold.deploy.inventory import select_servers
from freehold.deploy.spec import ROLES, ClusterSpec
from freehold.deploy.spec.placement import (
    check_placement,
    media_masters,
    postgres_primary_site,
    postgres_standby_site,
    redis_layout,
    survival,
)

app = typer.Typer(help="Read and check cluster specs.", no_args_is_help=True)

EXIT_PLACEMENT = 1


def report(spec: ClusterSpec) -> dict[str, Any]:
    """Everything `inventory check --json` prints."""
    errors, warnings = check_placement(spec)
    roles = {r: len(spec.servers_with_role(r)) for r in ROLES if spec.servers_with_role(r)}
    return {
        "spec": spec.name,
        "file": spec.path,
        "ok": not errors,
        "servers": len(spec.servers),
        "providers": [{"name": p.name, "kind": p.kind,
                       "sites": [s.name for s in spec.sites if s.provider == p.name],
                       "servers": len(spec.servers_of_provider(p.name))}
                      for p in spec.providers],
        "sites": [{"name": s.name, "provider": s.provider,
                   "servers": len(spec.servers_in_site(s.name)), "latency_ms": s.latency_ms}
                  for s in spec.sites],
        "roles": roles,
        "roles_by_site": {r: _count(spec, r, "site") for r in roles},
        "roles_by_provider": {r: _count(spec, r, "provider") for r in roles},
        "postgres": {"primary_site": postgres_primary_site(spec),
                     "standby_site": postgres_standby_site(spec)},
        "redis_shards": [{"index": sh.index, "master": sh.master.label,
                          "replicas": [r.label for r in sh.replicas]}
                         for sh in redis_layout(spec)],
        "media_masters": [s.name for s in media_masters(spec)],
        "survives": survival(spec),
        "errors": errors,
        "warnings": warnings,
    }


def _count(spec: ClusterSpec, role: str, attr: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in spec.servers_with_role(role):
        key = getattr(s, attr)
        out[key] = out.get(key, 0) + 1
    return out


def _role_table(doc: dict[str, Any], by: str, columns: list[tuple[str, str]], title: str
                ) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("role")
    for _, header in columns:
        table.add_column(header, justify="right")
    table.add_column("total", justify="right", style="bold")
    for role, total in doc["roles"].items():
        counts = doc[by][role]
        table.add_row(role, *[str(counts.get(key, 0) or "·") for key, _ in columns], str(total))
    return table


@app.command("check")
def check(
    spec: SpecArg = DEFAULT_SPEC,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Validate a spec, print servers per role/site/provider and what it survives.

    Exit 2 with one line per problem when the spec is invalid, 1 when a placement rule fails,
    0 otherwise.
    """
    cluster = load_cluster(spec, json_out=json_out)
    doc = report(cluster)
    if json_out:
        print_json(doc)
    else:
        _print_report(doc)
    if doc["errors"]:
        raise typer.Exit(EXIT_PLACEMENT)


def _print_report(doc: dict[str, Any]) -> None:
    console.print(f"[bold]{doc['spec']}[/bold] ({doc['file']}): {doc['servers']} servers, "
                  f"{len(doc['sites'])} sites, {len(doc['providers'])} providers")
    sites = [(s["name"], f"{s['name']}\n({s['provider']})") for s in doc["sites"]]
    providers = [(p["name"], f"{p['name']}\n({p['kind']})") for p in doc["providers"]]
    console.print(_role_table(doc, "roles_by_site", sites, "servers per role per site"))
    console.print(_role_table(doc, "roles_by_provider", providers,
                              "servers per role per provider"))
    if doc["redis_shards"]:
        shards = ", ".join(f"{s['master']}→{','.join(s['replicas']) or '∅'}"
                           for s in doc["redis_shards"])
        console.print(f"redis shards (master→replicas): {shards}", highlight=False)
    pg = doc["postgres"]
    if pg["primary_site"]:
        console.print(f"postgres: primary site {pg['primary_site']}, synchronous standby site "
                      f"{pg['standby_site'] or '—'}", highlight=False)
    for line in doc["errors"]:
        err_console.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    for line in doc["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)
    surv = doc["survives"]
    style = "green" if surv["any_site"] and surv["any_provider"] else "red"
    console.print(f"[{style}]{surv['line']}[/{style}]", highlight=False, soft_wrap=True)


@app.command("list")
def list_servers(
    spec: SpecArg = DEFAULT_SPEC,
    role: list[str] = typer.Option(None, "--role", help="Only servers with this role."),
    limit: list[str] = typer.Option(None, "--limit",
                                    help="Server names/globs, sites, site_X or provider_X."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the expanded servers (ranges resolved) with addresses and roles."""
    cluster = load_cluster(spec, json_out=json_out)
    servers = select_servers(cluster, role or None, limit or None)
    if json_out:
        print_json({"spec": cluster.name, "servers": [s.model_dump(mode="json")
                                                      for s in servers]})
        return
    table = Table(title=f"{cluster.name}: {len(servers)} servers", title_justify="left")
    for col in ("name", "site", "provider", "public", "private", "mesh", "hardware", "roles"):
        table.add_column(col, overflow="fold")
    for s in servers:
        table.add_row(s.name, s.site, s.provider, s.public_address, s.private_address,
                      s.mesh_address, f"{s.cores}c/{s.ram_gib:g}G/{s.disk_gib:g}G",
                      ",".join(r for r in s.roles if r not in ("base", "mesh")))
    console.print(table)
