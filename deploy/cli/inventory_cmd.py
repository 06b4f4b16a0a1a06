"""`freehold inventory`: read and check cluster specs (issue 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.common import not_done

app = typer.Typer(help="Read and check cluster specs.", no_args_is_help=True)


@app.command("check")
def check(
    spec: Path = typer.Argument(..., help="Cluster spec (YAML)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Validate a spec, print servers per role/site/provider and what it survives."""
    not_done("inventory check", 2)
