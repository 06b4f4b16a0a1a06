"""`freehold migrate`: move off a cloud provider (issue 8)."""

from __future__ import annotations

import typer

from deploy.cli.common import not_done

app = typer.Typer(help="Move a running deployment off a cloud provider.", no_args_is_help=True)


@app.command("discover")
def discover() -> None:
    """Inventory what runs on AWS."""
    not_done("migrate discover", 8)
