"""`freehold failover`: planned switchover of the database primary (issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.common import not_done


def failover(
    spec: Path = typer.Argument(..., help="Cluster spec (YAML)."),
    to: str | None = typer.Option(None, "--to", help="Candidate server."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Switch the PostgreSQL primary over to another member."""
    not_done("failover", 5)
