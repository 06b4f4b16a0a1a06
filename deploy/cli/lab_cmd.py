"""`freehold lab`: real Debian servers on this machine (issue 4)."""

from __future__ import annotations

import typer

from deploy.cli.common import not_done

app = typer.Typer(help="A real multi-site cluster of Debian servers on this machine.",
                  no_args_is_help=True)


@app.command("up")
def up() -> None:
    """Boot the lab servers of a spec."""
    not_done("lab up", 4)
