"""`freehold capacity`: accounts -> servers per role (issue 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.common import not_done


def capacity(
    accounts: str = typer.Option("10M", "--accounts", help="Accounts, e.g. 4M or 10M."),
    profile: Path | None = typer.Option(None, "--profile", help="Capacity profile YAML."),
    compare: str | None = typer.Option(None, "--compare", help="e.g. 4M,10M"),
    emit_spec: Path | None = typer.Option(None, "--emit-spec", help="Write a sized spec."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Turn a number of accounts into servers per role, with every input's source."""
    not_done("capacity", 2)
