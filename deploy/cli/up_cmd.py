"""`freehold up` and `freehold backup`: the whole platform on the lab (issue 6)."""

from __future__ import annotations

from pathlib import Path

import typer

from deploy.cli.common import not_done

backup_app = typer.Typer(help="Backups and restore drills.", no_args_is_help=True)


def up(
    spec: Path = typer.Option(Path("inventories/lab.yaml"), "--spec", help="Lab spec."),
) -> None:
    """Stand the whole platform up on the local lab."""
    not_done("up", 6)


@backup_app.command("restore-drill")
def restore_drill(spec: Path = typer.Argument(..., help="Cluster spec (YAML).")) -> None:
    """Restore the latest backup to a scratch server and check row counts."""
    not_done("backup restore-drill", 6)
