"""`freehold status`: one screen for on-call (issue 6)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.common import not_done


def status(
    spec: Path = typer.Argument(..., help="Cluster spec (YAML)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Show what is up per site and role; exit non-zero when degraded."""
    not_done("status", 6)
