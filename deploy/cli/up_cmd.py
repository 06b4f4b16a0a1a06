"""`freehold up`: the whole platform on the lab."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.deploy.cli.common import DEFAULT_SPEC


def up(
    spec: Path = typer.Option(DEFAULT_SPEC, "--spec", help="Lab spec."),
    secrets: Path | None = typer.Option(None, "--secrets", help="Encrypted secrets file "
                                        "(default: beside the spec; key from "
                                        "$FREEHOLD_SECRETS_KEY or ~/.config/freehold)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Stand the whole platform up on the local lab: boot it, deploy every role, migrate, seed
    demo data, smoke-check each site's virtual IP; prints the URL and an admin login."""
    from freehold.deploy.cli.platform_up import run_up_command

    run_up_command(spec, secrets, json_out)
