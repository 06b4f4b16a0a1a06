"""`freehold migrate`: move off a cloud provider (issue 8)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from deploy.cli.common import console, fail, print_json
from deploy.migrate import MigrateError
from deploy.migrate.state import set_step, state_dir_for

app = typer.Typer(help="Move a running deployment off a cloud provider.", no_args_is_help=True)

ManifestOpt = typer.Option(None, "--manifest", help="record this step in the manifest's runbook")


def _fail(e: Exception) -> None:
    fail(escape(str(e)))


def _state(manifest: Path | None) -> Path | None:
    return state_dir_for(manifest) if manifest else None


@app.command("objects")
def objects(
    from_: str = typer.Option(..., "--from", help="s3://BUCKET[/prefix] (AWS or --from-endpoint)"),
    to: str = typer.Option(..., "--to", help="cluster spec file, http://HOST:PORT/BUCKET or s3://"),
    from_endpoint: str = typer.Option(None, help="S3 endpoint of the source (default AWS)"),
    profile: str = typer.Option(None, help="AWS profile for the source"),
    to_endpoint: str = typer.Option(None, help="endpoint when --to is s3://BUCKET"),
    to_access_key: str = typer.Option(
        os.environ.get("FREEHOLD_S3_ACCESS_KEY", "freehold"), help="target access key"),
    to_secret_key: str = typer.Option(
        os.environ.get("FREEHOLD_S3_SECRET_KEY", "freehold-secret"), help="target secret"),
    checkpoint: Path = typer.Option(None, help="checkpoint file (default beside the manifest)"),
    workers: int = typer.Option(8, min=1, max=64),
    retries: int = typer.Option(4, min=1, max=20),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be copied"),
    json_out: bool = typer.Option(False, "--json"),
    manifest: Path = ManifestOpt,
) -> None:
    """Copy a bucket in parallel, resumably, verified by size and checksum."""
    from deploy.migrate.objects import ObjectCopier
    from deploy.migrate.s3client import parse_location
    from deploy.migrate.targets import media_target

    try:
        src = parse_location(from_, endpoint=from_endpoint)
        src.profile = profile
        dst = media_target(to, to_endpoint)
        dst.access_key, dst.secret_key = to_access_key, to_secret_key
        sd = _state(manifest)
        cp = checkpoint or (sd or Path(".")) / f"objects-{src.bucket}.checkpoint.json"
        copier = ObjectCopier(src, dst, cp, workers=workers, retries=retries)
        copier.check_access()
        todo, skip = copier.plan()
    except MigrateError as e:
        _fail(e)
    total = sum(o.size for o in todo)
    if dry_run:
        if json_out:
            print_json({"to_copy": [o.key for o in todo], "bytes": total,
                        "skipped": len(skip)})
            return
        t = Table(title=f"would copy {len(todo)} objects ({total} bytes), skip {len(skip)}")
        t.add_column("key")
        t.add_column("bytes", justify="right")
        for o in todo[:50]:
            t.add_row(o.key, str(o.size))
        if len(todo) > 50:
            t.add_row(f"… {len(todo) - 50} more", "")
        console.print(t)
        return
    set_step(sd, "objects", "running", source=from_, target=to)
    with Progress(TextColumn("copying"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, disable=json_out) as bar:
        task = bar.add_task("copy", total=total)
        report = copier.run(todo, skip, progress=lambda n: bar.advance(task, n))
    set_step(sd, "objects", "failed" if report.failed else "done", **{
        k: v for k, v in report.as_dict().items() if k != "failures"})
    if json_out:
        print_json(report.as_dict())
    else:
        t = Table(title=f"{src.describe()} → {dst.describe()}")
        for c in ("copied", "skipped", "failed", "bytes", "seconds"):
            t.add_column(c, justify="right")
        t.add_row(str(len(report.copied)), str(len(report.skipped)), str(len(report.failed)),
                  str(report.bytes_copied), f"{report.seconds:.1f}")
        console.print(t)
        for key, why in list(report.failed.items())[:20]:
            console.print(f"[red]failed[/red] {key}: {why}", highlight=False)
    if report.failed:
        raise typer.Exit(1)
