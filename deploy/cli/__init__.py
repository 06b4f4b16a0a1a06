"""The `freehold` operator CLI. Each command group lives in its own module."""

from __future__ import annotations

import typer

from freehold.deploy.cli import (
    backup_cmd,
    capacity_cmd,
    deploy_cmd,
    dns_cmd,
    drill_cmd,
    failover_cmd,
    inventory_cmd,
    lab_cmd,
    loadtest_cmd,
    migrate_cmd,
    status_cmd,
    trust_cmd,
    up_cmd,
)

app = typer.Typer(
    name="freehold",
    help="Self-host a social network on servers you own or rent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(inventory_cmd.app, name="inventory")
app.add_typer(lab_cmd.app, name="lab")
app.add_typer(loadtest_cmd.app, name="loadtest")
app.add_typer(migrate_cmd.app, name="migrate")
app.add_typer(dns_cmd.app, name="dns")
app.command("plan")(deploy_cmd.plan)
app.command("deploy")(deploy_cmd.deploy)
app.command("rollback")(deploy_cmd.rollback)
app.command("status")(status_cmd.status)
app.command("capacity")(capacity_cmd.capacity)
app.command("failover")(failover_cmd.failover)
app.command("drill")(drill_cmd.drill)
app.command("up")(up_cmd.up)
app.command("trust")(trust_cmd.trust)
app.add_typer(backup_cmd.app, name="backup")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
