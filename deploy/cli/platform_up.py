"""`freehold up` on the terminal: progress all the way, then the URL and an admin login."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from freehold.deploy.cli.common import console, err_console, fail, load_cluster, print_json

EXIT_FAILED = 1


def run_up_command(spec: Path, secrets: Path | None, json_out: bool) -> None:
    from freehold.deploy.cli.deploy_cmd import _check_selection

    cluster = load_cluster(spec, option="--spec")
    if cluster.lab is None:
        fail(f"{spec}: not a lab spec (no `lab:` section) — `freehold up` stands the platform "
             "up on the local lab; use `freehold deploy` for real servers")
    _check_selection(cluster, None, None)

    from freehold.deploy.artifacts.assets import AssetError
    from freehold.deploy.artifacts.release import ReleaseError
    from freehold.deploy.lab import Lab
    from freehold.deploy.lab.errors import LabError
    from freehold.deploy.lab.host import check_prerequisites
    from freehold.deploy.provision.greenlets import patch_gevent
    from freehold.deploy.provision.up import ADMIN_PASSWORD, ADMIN_USER, UpError, run_up
    from freehold.deploy.secrets import SecretsError
    from freehold.roles.lb.config import LbConfigError

    try:
        lab = Lab.from_spec(spec)
        check_prerequisites()
    except LabError as e:
        fail(str(e))
    patch_gevent()  # before the progress display starts its thread
    out = err_console if json_out else console
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=out, transient=True) as bar:
            task = bar.add_task("lab: starting", total=1)

            started = time.monotonic()
            last = [""]

            def step(prefix: str):  # noqa: ANN202 - a progress callback
                def update(what: str, done: int, total: int) -> None:
                    bar.update(task, description=f"{prefix}{what}", completed=done,
                               total=max(1, total))
                    if not out.is_terminal and f"{prefix}{what}" != last[0]:
                        # logs and CI: one plain line per step instead of a live bar
                        last[0] = f"{prefix}{what}"
                        out.print(f"[{time.monotonic() - started:6.0f} s] {last[0]}",
                                  highlight=False, markup=False)
                return update

            report = run_up(spec, cluster, lab, secrets, progress=step(""),
                            deploy_progress=step("deploy "))
    except (UpError, LabError, SecretsError, AssetError, ReleaseError, LbConfigError) as e:
        err_console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    if json_out:
        print_json(report.to_doc())
        return
    took = ", ".join(f"{k} {v:.0f} s" for k, v in report.steps.items())
    console.print(f"[green]Freehold is up[/green] on lab {cluster.name} in "
                  f"{report.seconds:.0f} s ({took}); {report.changed} change(s) deployed.",
                  highlight=False)
    for url in report.urls:
        console.print(f"  open {url}", highlight=False)
    console.print(f"  admin login: {ADMIN_USER} / {ADMIN_PASSWORD}"
                  + (f"   (demo data: {report.seeded} accounts created)" if report.seeded
                     else ""), highlight=False)
    if report.ca_file:
        console.print(f"  self-signed certificate: {report.ca_file} "
                      f"(curl --cacert {report.ca_file} {report.urls[0] if report.urls else ''})",
                      highlight=False)
