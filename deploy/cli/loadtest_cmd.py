"""`freehold loadtest`: Locust load tests sized to the surge (issue 7)."""

from __future__ import annotations

import typer

from deploy.cli.common import not_done

app = typer.Typer(help="Seed, run and calibrate load tests.", no_args_is_help=True)


@app.command("run")
def run() -> None:
    """Run a load-test shape against a spec or URL."""
    not_done("loadtest run", 7)
