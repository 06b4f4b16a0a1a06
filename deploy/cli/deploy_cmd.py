"""`freehold plan`, `deploy`, `rollback`: provision servers with pyinfra (issues 5, 6)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.common import not_done


def plan(
    spec: Path = typer.Argument(..., help="Cluster spec (YAML)."),
    roles: str | None = typer.Option(None, "--roles", help="Comma-separated roles."),
    limit: str | None = typer.Option(None, "--limit", help="Host or group."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Show what a deploy would change, changing nothing."""
    not_done("plan", 5)


def deploy(
    spec: Path = typer.Argument(..., help="Cluster spec (YAML)."),
    roles: str | None = typer.Option(None, "--roles", help="Comma-separated roles."),
    limit: str | None = typer.Option(None, "--limit", help="Host or group."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show changes, change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before changing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Apply the roles of the spec to its servers (idempotent)."""
    not_done("deploy", 5)


def rollback(spec: Path = typer.Argument(..., help="Cluster spec (YAML).")) -> None:
    """Return every app server to the previous release."""
    not_done("rollback", 6)
