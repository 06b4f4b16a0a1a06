"""`freehold loadtest`: Locust load tests sized to the surge (issue 7).

    freehold loadtest seed SPEC|URL --accounts N [--dsn DSN] [--production-ok]
    freehold loadtest clean SPEC|URL [--dsn DSN]
    freehold loadtest run SPEC|URL --shape surge|spike|soak [--duration 7m] [--workers N]
    freehold loadtest calibrate SPEC|URL [--duration 5m] [--workers N]

Exit codes: 0 pass, 1 an SLO gate breached (run) or the SLO never held (calibrate), 2 bad input.
Locust runs in its own processes; this process never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    console,
    err_console,
    fail,
    print_json,
    require_spec_file,
)

app = typer.Typer(help="Seed, run and calibrate load tests.", no_args_is_help=True)

EXIT_BREACH = 1

PROFILE_OPT = typer.Option(None, "--profile", help="Capacity profile YAML (traffic model).")
SLO_OPT = typer.Option(None, "--slo", help="SLO gates YAML (default loadgen/slo.yaml).")
ROSTER_OPT = typer.Option(None, "--roster", help="Roster JSON written by `loadtest seed`.")
WORKERS_OPT = typer.Option(1, "--workers", min=0, max=64,
                           help="Locust worker processes (0: one process does everything).")
CORES_OPT = typer.Option(None, "--app-cores",
                         help="Cores serving the app (URL targets; default 1, specs: their own).")
URL_OPT = typer.Option(None, "--url", help="Entry URL for a spec target (default: its LB).")
JSON_OPT = typer.Option(False, "--json", help="Print one JSON document.")
DSN_OPT = typer.Option(None, "--dsn", envvar="FREEHOLD_DATABASE_URL",
                       help="PostgreSQL DSN of the app's database (write side).")
SECRETS_OPT = typer.Option(None, "--secrets",
                           help="A spec's encrypted secrets file (default: beside the spec).")

# SPEC|URL: common.SpecArg's default, or an app's URL
TargetArg = Annotated[str, typer.Argument(help="Cluster spec file or app URL; default: the "
                                          "local lab's spec.", show_default=True)]


def _target(text: str, **kw: Any) -> Any:
    """The load test's target, or the one-line error (a missing spec file: common's)."""
    from freehold.deploy.loadtest.target import TargetError, is_url, resolve_target

    if not is_url(text):
        require_spec_file(Path(text), also=" or an app URL http://HOST:PORT")
    try:
        return resolve_target(text, **kw)
    except TargetError as exc:
        fail(str(exc))


def _inputs(target_text: str, profile: Path | None, slo_path: Path | None,
            url: str | None = None, app_cores: float | None = None) -> tuple[Any, Any, Any]:
    from freehold.loadgen.slo import SloError, load_slo
    from freehold.loadgen.traffic import ProfileError, load_model

    target = _target(target_text, url=url, app_cores=app_cores)
    try:
        model = load_model(profile)
        slo = load_slo(slo_path)
    except (ProfileError, SloError) as exc:
        fail(str(exc))
    return target, model, slo


@contextmanager
def _progress(what: str, quiet: bool) -> Iterator[Callable[[float, float], None]]:
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeElapsedColumn(),
                    console=err_console, transient=True, disable=quiet)
    with prog:
        task = prog.add_task(what, total=1)

        def tick(elapsed: float, total: float) -> None:
            prog.update(task, completed=min(elapsed, total), total=total)

        yield tick


def _roster(target: Any, given: str, roster: Path | None) -> Path:
    path = roster or target.default_roster
    if not path.exists():
        fail(f"{path}: no roster — run `freehold loadtest seed {given} --accounts N --dsn DSN`"
             " first, or pass --roster FILE")
    return path


def _steps_table(outcome: Any) -> Table:
    from freehold.deploy.loadtest.analysis import STEP_HEADERS, step_rows

    res = outcome.result
    t = Table(title=f"{res.plan.shape} on {outcome.summary['target']}", title_justify="left")
    for h in STEP_HEADERS:
        t.add_column(h, justify="left" if h in ("step", "SLO") else "right")
    for row, s in zip(step_rows(res), res.steps, strict=True):
        style = None if s.passed else "red"
        t.add_row(*row, style=style)
    return t


def _print_outcome(outcome: Any) -> None:
    res = outcome.result
    console.print(_steps_table(outcome))
    for note in res.plan.notes + res.notes:
        console.print(f"  {note}", highlight=False)
    if res.plan.think_scale != 1:
        console.print(f"  think times x{res.plan.think_scale:.3g} (the profile's "
                      f"{res.plan.think_min_s:g}-{res.plan.think_max_s:g} s, compressed so the "
                      "users fit the generator; the mix and the requests/s are unchanged)",
                      highlight=False)
    ff = res.first_failed
    for b in res.run_breaches:
        console.print(f"  [red]{b}[/red]", highlight=False)
    if ff:
        console.print(f"  [red]first failed at step {ff.name}[/red]: "
                      f"{'; '.join(ff.breaches[:4])}", highlight=False)
    cpu = outcome.run.generator_cpu
    console.print(f"  load generator: {cpu.get('processes')} Locust processes, "
                  f"{cpu.get('mean_cores')} cores on average (max {cpu.get('max_cores')})",
                  highlight=False)
    console.print(f"  reports: {outcome.run.html}  {outcome.chart}  "
                  f"{outcome.run.csv_prefix}_*.csv", highlight=False)
    verdict = "[green]PASS[/green]" if res.passed else "[red]FAIL[/red]"
    console.print(f"  SLO: {verdict}")


def _fail_database(exc: Exception) -> NoReturn:
    """psycopg and asyncpg errors (the seed's COPY runs on asyncpg) in one line, never a
    traceback; anything else is a bug: raised."""
    if type(exc).__module__.startswith(("psycopg", "asyncpg")):
        fail(f"--dsn: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
    raise exc


@contextmanager
def _database(target: Any, dsn: str | None, secrets: Path | None = None) -> Iterator[str]:
    """The given DSN, or for a spec an SSH tunnel to its database router."""
    if dsn:
        yield dsn
        return
    from freehold.deploy.loadtest.specdb import spec_dsn

    with spec_dsn(target, secrets) as url:
        yield url


def _on_database(tgt: Any, dsn: str | None, secrets: Path | None, status: str,
                 work: Callable[[str], Any]) -> Any:
    """`work(url)` on the target's database (the DSN, or a tunnel to a spec's router) under a
    status line; the seeder's and the target's errors and psycopg's in one line."""
    from freehold.deploy.loadtest.seed import SeedError
    from freehold.deploy.loadtest.target import TargetError

    try:
        with err_console.status(status), _database(tgt, dsn, secrets) as url:
            return work(url)
    except (SeedError, TargetError) as exc:
        fail(str(exc))
    except Exception as exc:
        _fail_database(exc)


@app.command("seed")
def seed(
    target: TargetArg = str(DEFAULT_SPEC),
    accounts: str = typer.Option(..., "--accounts", help="Accounts to seed, e.g. 100k."),
    dsn: str | None = DSN_OPT,
    members: int = typer.Option(20_000, "--members", min=1,
                                help="Accounts the simulated users act as (sessions made)."),
    roster: Path | None = ROSTER_OPT,
    roster_only: bool = typer.Option(False, "--roster-only",
                                     help="Keep the data; only (re)write the roster."),
    secrets: Path | None = SECRETS_OPT,
    production_ok: bool = typer.Option(
        False, "--production-ok",
        help="Seed a target that is not the lab (adds load-test accounts to its database)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Seed load-test accounts (power-law follows, posts over time) via COPY; write the roster."""
    from freehold.deploy.loadtest.seed import SeedError, refuse_production
    from freehold.deploy.loadtest.seed import seed as do_seed
    from freehold.deploy.loadtest.target import parse_accounts

    try:
        n = parse_accounts(accounts)
    except ValueError as exc:
        fail(f"--accounts: {exc}")
    if n < 10:
        fail("--accounts: at least 10 accounts")
    tgt = _target(target)
    if not dsn and tgt.spec is None:
        fail("--dsn: the app database's DSN is needed to seed through COPY (or set "
             "FREEHOLD_DATABASE_URL)")
    path = roster or tgt.default_roster
    try:
        refuse_production(tgt, dsn, production_ok)
    except SeedError as exc:
        fail(str(exc))
    rep = _on_database(tgt, dsn, secrets, f"seeding {n:,} accounts into {tgt.label}…",
                       lambda url: do_seed(url, tgt.label, n, path, members=members,
                                           skip_dataset=roster_only,
                                           on_retry=lambda m: err_console.print(
                                               f"[yellow]{m}[/]", highlight=False)))
    if json_out:
        print_json(rep.to_json())
        return
    t = Table(title=f"seeded {tgt.label}", title_justify="left")
    for h in ("accounts", "follows", "posts", "seconds", "rows/s", "members"):
        t.add_column(h, justify="right")
    t.add_row(f"{rep.accounts:,}", f"{rep.follows:,}", f"{rep.posts:,}", f"{rep.seconds:.1f}",
              f"{rep.rows_per_s:,.0f}", f"{rep.members:,}")
    console.print(t)
    console.print(f"  roster: {rep.roster}", highlight=False)


@app.command("clean")
def clean(
    target: TargetArg = str(DEFAULT_SPEC),
    dsn: str | None = DSN_OPT,
    roster: Path | None = ROSTER_OPT,
    secrets: Path | None = SECRETS_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Delete every load-test account the seed made, with all they wrote, and the roster."""
    from freehold.deploy.loadtest.seed import clean as do_clean

    tgt = _target(target)
    if not dsn and tgt.spec is None:
        fail("--dsn: the app database's DSN is needed to clean (or set FREEHOLD_DATABASE_URL)")
    rep = _on_database(tgt, dsn, secrets, f"deleting the load-test accounts of {tgt.label}…",
                       lambda url: do_clean(url, roster or tgt.default_roster))
    if json_out:
        print_json(rep.to_json())
        return
    console.print(f"deleted {rep.accounts:,} load-test accounts of {tgt.label} with their "
                  f"{rep.posts:,} posts and {rep.follows:,} follows", highlight=False)
    if rep.media_left:
        console.print(f"  {rep.media_left:,} media objects of theirs stay in the media store "
                      "(their rows are gone; the store is not reachable from here)",
                      highlight=False)
    if rep.roster:
        console.print(f"  roster removed: {rep.roster}", highlight=False)


@app.command("run")
def run(
    target: TargetArg = str(DEFAULT_SPEC),
    shape: str = typer.Option("surge", "--shape", help="surge, spike or soak."),
    duration: str = typer.Option("", "--duration",
                                 help="Whole run, e.g. 7m (default surge 7m, spike 4m, soak 30m)."),
    workers: int = WORKERS_OPT,
    steps: int = typer.Option(7, "--steps", min=2, max=50, help="Surge steps (4M..10M)."),
    from_accounts: str = typer.Option("4M", "--from", help="Baseline accounts."),
    to_accounts: str = typer.Option("10M", "--to", help="Surge target accounts."),
    max_users: int = typer.Option(1000, "--max-users", min=1,
                                  help="Users at the busiest step (think times compress)."),
    app_cores: float | None = CORES_OPT,
    url: str | None = URL_OPT,
    profile: Path | None = PROFILE_OPT,
    slo: Path | None = SLO_OPT,
    roster: Path | None = ROSTER_OPT,
    out: Path | None = typer.Option(None, "--out", help="Folder for the reports."),
    json_out: bool = JSON_OPT,
) -> None:
    """Run a load shape; exit 1 when an SLO gate is breached."""
    from freehold.deploy.loadtest.execute import execute, run_dir
    from freehold.deploy.loadtest.runner import RunError
    from freehold.deploy.loadtest.target import (
        TargetError,
        build_plan,
        parse_accounts,
        parse_duration,
    )
    from freehold.loadgen.shapes import SHAPES
    from freehold.loadgen.traffic import ProfileError

    if shape not in SHAPES:
        fail(f"--shape {shape}: unknown — use one of {', '.join(SHAPES)}")
    try:
        secs = parse_duration(duration) if duration else {"surge": 420.0, "spike": 240.0,
                                                          "soak": 1800.0}[shape]
        lo, hi = parse_accounts(from_accounts), parse_accounts(to_accounts)
    except ValueError as exc:
        fail(f"--duration/--from/--to: {exc}")
    if secs < 4 or secs > 24 * 3600:
        fail("--duration: between 4 s and 24 h")
    if not 0 < lo < hi:
        fail("--from/--to: need 0 < from < to (e.g. --from 4M --to 10M)")
    tgt, model, gates = _inputs(target, profile, slo, url, app_cores)
    path = _roster(tgt, target, roster)
    remote = bool(tgt.loadgen) and workers > 0 and tgt.spec is not None
    try:
        plan = build_plan(shape, tgt, model, secs, from_accounts=lo, to_accounts=hi,
                          steps=steps, max_users=max_users)
    except (ProfileError, TargetError) as exc:
        fail(str(exc))
    out_dir = out or run_dir(shape)
    try:
        with _progress(f"{shape} on {tgt.label}", json_out) as tick:
            outcome = execute(plan, tgt, path, gates, out_dir, workers=workers, remote=remote,
                              on_tick=tick)
    except RunError as exc:
        fail(str(exc))
    if json_out:
        print_json(outcome.summary)
    else:
        _print_outcome(outcome)
    if not outcome.result.passed:
        raise typer.Exit(EXIT_BREACH)


def _watch_groups(items: list[str]) -> dict[str, list[int]]:
    """--watch NAME=PID (repeatable) -> {name: [pids]}; a bad item fails in one line."""
    groups: dict[str, list[int]] = {}
    for item in items:
        name, _, pid = item.partition("=")
        if not name.strip() or not pid.strip().isdigit() or name.strip() in ("app", "machine"):
            fail(f"--watch {item}: give NAME=PID (e.g. postgres=1234; NAME not app or machine)")
        groups.setdefault(name.strip(), []).append(int(pid))
    return groups


def _print_cpu(doc: dict[str, Any]) -> None:
    """The per-step CPU accounting of a calibration: app cores and what else was busy."""
    table = Table(title="CPU over each step's measured window (cores busy)",
                  title_justify="left")
    groups = sorted({g for s in doc["steps"] for g in (s.get("cores_busy") or {})})
    for col in ("step", "req/s", "req per app CPU-s", *groups, "load 1m"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for s in doc["steps"]:
        busy = s.get("cores_busy") or {}
        table.add_row(s["name"] + ("" if s["passed"] else " FAIL"), f"{s['rps']:,.1f}",
                      f"{s['rps_per_app_cpu']:,.1f}" if s.get("rps_per_app_cpu") else "-",
                      *(f"{busy[g]:.2f}" if g in busy else "-" for g in groups),
                      f"{s['load_avg_1m']:.2f}" if s.get("load_avg_1m") is not None else "-")
    console.print(table)
    acc = doc.get("cpu_accounting") or {}
    if acc.get("error_count"):
        console.print(f"  CPU reads that failed: {acc['error_count']} "
                      f"({'; '.join(acc.get('errors') or [])})", highlight=False)


@app.command("calibrate")
def calibrate(
    target: TargetArg = str(DEFAULT_SPEC),
    duration: str = typer.Option("5m", "--duration", help="Longest the ramp may take."),
    workers: int = WORKERS_OPT,
    steps: int = typer.Option(10, "--steps", min=2, max=40, help="Ramp steps at most."),
    start_users: int = typer.Option(4, "--start-users", min=1),
    factor: float = typer.Option(1.6, "--factor", min=1.05, max=4.0,
                                 help="Users multiply by this each step."),
    think_scale: float = typer.Option(0.02, "--think-scale", min=0.0, max=1.0,
                                      help="Think times x this (the mix stays the profile's)."),
    server: int = typer.Option(0, "--server", min=0, help="Which app server of the spec."),
    app_cores: float | None = CORES_OPT,
    profile: Path | None = PROFILE_OPT,
    slo: Path | None = SLO_OPT,
    roster: Path | None = ROSTER_OPT,
    write: Path | None = typer.Option(None, "--write",
                                      help="Measurements file (default "
                                           "loadgen/measurements/calibration.json)."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the reports."),
    app_pid: int | None = typer.Option(None, "--app-pid", min=1,
                                       help="URL targets: root pid of the local app server "
                                            "whose CPU is accounted (default: the process "
                                            "listening on the URL's port)."),
    watch: list[str] = typer.Option([], "--watch",
                                    help="URL targets: NAME=PID of another local server whose "
                                         "CPU is recorded too (postgres=123); repeatable."),
    json_out: bool = JSON_OPT,
) -> None:
    """Raise load on one app server until the SLO breaks; write requests/s per server and per
    app CPU-second (the app's own CPU accounting)."""
    from freehold.deploy.loadtest.calibrate import CALIBRATION
    from freehold.deploy.loadtest.calibrate import calibrate as do_calibrate
    from freehold.deploy.loadtest.execute import run_dir
    from freehold.deploy.loadtest.runner import RunError
    from freehold.deploy.loadtest.target import parse_duration

    try:
        secs = parse_duration(duration)
    except ValueError as exc:
        fail(f"--duration: {exc}")
    watched = _watch_groups(watch)
    tgt, model, gates = _inputs(target, profile, slo, None, app_cores)
    if server >= len(tgt.app_urls):
        fail(f"--server {server}: the target has {len(tgt.app_urls)} app server(s)")
    path = _roster(tgt, target, roster)
    out_dir = out or run_dir("calibrate")
    dest = write or CALIBRATION
    try:
        with _progress(f"calibrate {tgt.app_urls[server]}", json_out) as tick:
            doc, outcome = do_calibrate(tgt, model, path, gates, out_dir, duration_s=secs,
                                        workers=workers, server=server,
                                        start_users=start_users, factor=factor, steps=steps,
                                        think_scale=think_scale, write_to=dest, on_tick=tick,
                                        remote=bool(tgt.loadgen) and workers > 0,
                                        app_pid=app_pid, watch=watched)
    except RunError as exc:
        fail(str(exc))
    if json_out:
        print_json(doc)
    else:
        _print_outcome(outcome)
        console.print(f"  calibration: [bold]{doc['rps_per_server']:,.0f} req/s per server, "
                      f"{doc['rps_per_core']:,.0f} per core[/bold] ({doc['limited_by']})",
                      highlight=False)
        console.print(f"  per core = {doc['rps_per_core_basis']}; per nominal core "
                      f"{doc['rps_per_nominal_core']:,.0f}", highlight=False)
        _print_cpu(doc)
        console.print(f"  written to {os.path.relpath(dest)} (read by `freehold capacity`)",
                      highlight=False)
    if doc["rps_per_server"] <= 0:
        raise typer.Exit(EXIT_BREACH)
