"""`freehold migrate database`: the initial copy's progress and the cut-over's report (rich)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from freehold.deploy.cli.common import console, err_console, print_json
from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.state import set_step


def copy_database(from_: str, dst: str, dump: bool, jobs: int, watch: float, json_out: bool,
                  sd: Path | None) -> None:
    """Start (or pick up) logical replication, else dump/restore; show the initial copy's
    progress (tables ready, bytes) for up to `watch` seconds, or until the copy is consistent."""
    from freehold.deploy.migrate import database as db

    with db.connect(from_, "source") as src, db.connect(dst, "target"):
        ok, why = db.can_replicate_logically(src)
    if not ok and not dump:
        raise MigrateError(f"source cannot replicate logically: {why} — fix that, or pass "
                           "--dump to copy with pg_dump/pg_restore (writes stop for the whole "
                           "copy)")
    set_step(sd, "database", "running")
    if dump:
        with console.status(f"pg_dump | pg_restore, {jobs} jobs"):
            db.dump_restore(from_, dst, jobs=jobs)
        set_step(sd, "database", "done", mode="dump-restore")
        if json_out:
            print_json({"mode": "dump-restore", "lag": {"lag_bytes": 0, "tables_syncing": 0}})
        return
    mode = db.start_replication(from_, dst)
    if not json_out:
        console.print(mode)
    with db.connect(from_, "source") as src, db.connect(dst, "target") as tgt:
        p = _watch(src, tgt, lambda: db.advance(src, tgt, from_, dst, jobs=jobs), watch,
                   json_out)
    set_step(sd, "database", "running", mode=mode, pid=None, lag_bytes=p.lag_bytes,
             tables_ready=f"{p.tables_ready}/{p.tables}", next="--cutover when ready")
    if json_out:
        print_json({"mode": mode, "consistent": p.consistent, "tables": p.tables,
                    "tables_ready": p.tables_ready, "indexes_missing": p.indexes_missing,
                    "bytes_source": p.bytes_source,
                    "bytes_target": p.bytes_target,
                    "lag": {"lag_bytes": p.lag_bytes,
                            "tables_syncing": p.tables - p.tables_ready}})
    elif p.consistent:
        console.print(f"[green]first consistent copy[/]: {p.tables} tables, lag "
                      f"{p.lag_bytes} bytes — run again with --cutover when ready")
    else:
        console.print(f"copying: {p.tables_ready}/{p.tables} tables ready, "
                      f"{p.indexes_missing} indexes to build, lag {p.lag_bytes} bytes — "
                      "replication goes on in the target; rerun with --watch SECONDS to "
                      "follow it (it builds the indexes once every table is copied)")


def _watch(src: Any, tgt: Any, advance: Callable[[], list[str]], watch: float,
           json_out: bool) -> Any:
    """Poll the copy every second for up to `watch` seconds (at least once), calling `advance`
    (new partitions, then the deferred indexes once every table is copied) each time."""
    from freehold.deploy.migrate import database as db

    end = time.monotonic() + watch
    cols = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TextColumn("{task.fields[state]}"), TimeElapsedColumn())
    with Progress(*cols, console=err_console, transient=False, disable=json_out) as bar:
        task = bar.add_task("initial copy", total=1, completed=0, state="")
        while True:  # bounded: --watch seconds
            p = db.copy_progress(src, tgt)
            if p.copied and p.indexes_missing:
                bar.update(task, state=f"building {p.indexes_missing} deferred indexes")
            for line in advance():
                if not json_out:
                    err_console.print(line)
            p = db.copy_progress(src, tgt)
            total = max(p.bytes_source, 1)  # the target's tables hold no bloat: may stay below
            bar.update(task, total=total, completed=total if p.consistent
                       else min(p.bytes_target, p.bytes_source),
                       state=f"{p.tables_ready}/{p.tables} tables ready, "
                             f"{p.indexes_missing} indexes to build, lag {p.lag_bytes} B")
            if p.consistent or time.monotonic() >= end:
                return p
            time.sleep(1.0)


def cutover(from_: str, dst: str, timeout: float, workers: int, json_out: bool,
            sd: Path | None) -> None:
    from freehold.deploy.migrate import database as db

    set_step(sd, "database-cutover", "running")
    bar = Progress(TextColumn("verifying"), BarColumn(), TextColumn("{task.completed}/"
                   "{task.total} ranges, {task.fields[rows]:,} rows"), TimeElapsedColumn(),
                   console=err_console, disable=json_out)
    task = bar.add_task("verify", total=None, rows=0)

    def ready(w: dict[str, Any]) -> None:
        set_step(sd, "database-cutover", "running", target_ready=True,
                 frozen_s=w["frozen_s"])
        if not json_out:
            console.print(
                f"[green]target ready[/]: point the app at the target now. Writes stopped "
                f"{w['frozen_s']:.2f} s ago (lag at freeze {w['lag_at_freeze_bytes']} bytes, "
                f"caught up in {w['drain_s']:.2f} s); the source stays read-only. Verifying…")
        bar.start()

    def progress(done: int, total: int, rows: int) -> None:
        bar.update(task, completed=done, total=total, rows=rows)

    if not json_out:
        console.print("stopping writes on the source, waiting for the target to catch up…")
    try:
        result = db.cutover(from_, dst, timeout=timeout, workers=workers, on_ready=ready,
                            progress=progress)
    finally:
        bar.stop()
    diff = result["tables_differing"]
    set_step(sd, "database-cutover", "failed" if diff else "done",
             sequences=result["sequences_reset"], tables=len(result["tables"]),
             frozen_s=result["frozen_s"], rows_verified=result["rows_verified"],
             **({"differing": ", ".join(diff)[:200]} if diff else {}))
    if json_out:
        print_json(result)
    else:
        _report(result)
    if diff:
        raise MigrateError(f"verification: {len(diff)} table(s) differ ({', '.join(diff[:5])}) "
                           "— the source is frozen and intact: investigate, or roll back with "
                           "freehold migrate database --rollback --from SOURCE --to TARGET")


def _report(r: dict[str, Any]) -> None:
    t = Table(title="cut-over verification (frozen source vs the target's snapshot)")
    for c in ("table", "rows source", "rows target", "ranges", "equal"):
        t.add_column(c)
    for c in r["tables"]:
        t.add_row(c["table"], f"{c['rows_source']:,}", f"{c['rows_target']:,}", str(c["chunks"]),
                  "yes" if c["equal"] else f"[red]NO[/] {c['first_difference'] or ''}")
    console.print(t)
    replay = r["replay_lag_at_freeze_s"]
    console.print(
        f"write outage (source frozen → target ready): {r['frozen_s']:.2f} s; lag at freeze "
        f"{r['lag_at_freeze_bytes']} bytes" + (f", {replay:.2f} s" if replay is not None else "")
        + f"; caught up in {r['drain_s']:.2f} s; sequences reset: {r['sequences_reset']}")
    n = len(r["tables_differing"])
    console.print(f"verified {r['rows_verified']:,} rows in {len(r['tables'])} tables in "
                  f"{r['verify_s']} s: " + ("[green]all equal[/]" if not n
                                            else f"[red]{n} table(s) differ[/]"))

