"""`freehold plan`, `deploy`, `rollback`: provision servers with pyinfra (issues 5, 6)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    SpecArg,
    console,
    err_console,
    fail,
    fail_lines,
    load_cluster,
    print_json,
)
from freehold.deploy.secrets import SecretsError
from freehold.deploy.spec import ClusterSpec
from freehold.deploy.spec.placement import check_placement
from freehold.deploy.ssh import SSHSettings, settings_for
from freehold.roles.registry import RoleError, ordered_roles

EXIT_FAILED = 1


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_selection(cluster: ClusterSpec, roles: list[str] | None,
                     limit: list[str] | None) -> None:
    from freehold.deploy.inventory import select_servers

    try:
        ordered_roles(roles)
    except RoleError as e:
        fail(f"--roles: {e}")
    if limit and not select_servers(cluster, None, limit):
        fail(f"--limit {','.join(limit)}: matches no server of {cluster.name} — give server "
             "names, sites, site_<name>/provider_<name> groups or globs")
    errors, _ = check_placement(cluster)
    if errors:
        fail_lines([f"{cluster.path}: placement: {e}" for e in errors])
    if cluster.servers_with_role("dns") and (roles is None or "dns" in roles):
        from freehold.roles.dns.config import DnsConfigError, zone_text

        try:  # the zone (and its records file) renders: said now, not by every dns server
            zone_text(cluster)
        except DnsConfigError as e:
            fail(str(e))


def ssh_settings(spec: Path, cluster: ClusterSpec, ssh_key: Path | None,
                 known_hosts: Path | None) -> SSHSettings:
    """The spec's SSH settings (deploy.ssh), the given key and known_hosts file first."""
    from freehold.deploy.lab.errors import LabError

    for flag, path in (("--ssh-key", ssh_key), ("--known-hosts", known_hosts)):
        if path is not None and not path.is_file():
            fail(f"{flag} {path}: no such file — give an existing file or leave the option out")
    try:
        return settings_for(spec, cluster, ssh_key, known_hosts)
    except LabError as e:
        fail(f"{spec}: {e}")


@dataclass
class RunOptions:
    """The deploy's pace and budgets, parsed from the command line."""

    parallel: int = 50
    host_timeout: float = 900.0
    batch: Any = None          # batches.BatchSize | None
    max_fail: float | None = None


def run_options(parallel: str | None, host_timeout: str | None, batch: str | None = None,
                max_fail: str | None = None) -> RunOptions:
    """Parse --parallel, --host-timeout, --batch and --max-fail; a bad value is one line
    naming the option (exit 2)."""
    from freehold.deploy.provision.batches import (
        OptionError,
        parse_batch,
        parse_count,
        parse_max_fail,
        parse_seconds,
    )
    from freehold.deploy.provision.driver import DEFAULT_HOST_TIMEOUT, DEFAULT_PARALLEL

    try:
        return RunOptions(
            parallel=(parse_count("--parallel", parallel, 1, 1000) if parallel is not None
                      else DEFAULT_PARALLEL),
            host_timeout=(parse_seconds("--host-timeout", host_timeout, 1, 86400)
                          if host_timeout is not None else DEFAULT_HOST_TIMEOUT),
            batch=parse_batch(batch) if batch is not None else None,
            max_fail=parse_max_fail(max_fail) if max_fail is not None else None)
    except OptionError as e:
        fail(str(e))


class PhaseBars:
    """One rich progress bar per phase (hosts done / failed / left, the slowest host still
    running); on a console that is not a terminal (logs, CI), one plain line as each phase
    starts and ends instead."""

    def __init__(self, bar: Progress, out: Any) -> None:
        self.bar, self.out = bar, out
        self.tasks: dict[str, Any] = {}
        self.ended: set[str] = set()
        self.started = time.monotonic()

    def __call__(self, st: Any) -> None:
        task = self.tasks.get(st.label)
        if task is None:
            task = self.tasks[st.label] = self.bar.add_task(st.label, total=max(1, st.hosts),
                                                            counts="")
            self.plain(f"{st.label}: {st.hosts} server(s)")
        # the bar moves with every host's steps (facts read, operations run); the counts say
        # which hosts are through
        self.bar.update(task, completed=st.steps_done, total=max(1, st.steps_total),
                        counts=st.counts())
        if st.finished and st.label not in self.ended:
            self.ended.add(st.label)
            self.plain(f"{st.label}: {st.counts()} in {st.seconds:.1f} s")

    def plain(self, line: str) -> None:
        if not self.out.is_terminal:
            self.out.print(f"[{time.monotonic() - self.started:6.0f} s] {line}",
                           highlight=False, markup=False)


def execute(spec: Path, roles: str | None, limit: str | None, dry_run: bool,
            json_out: bool, ssh_key: Path | None, known_hosts: Path | None,
            secrets: Path | None, opts: RunOptions | None = None) -> Any:
    opts = opts or RunOptions()
    cluster = load_cluster(spec)
    role_list, limit_list = _split(roles), _split(limit)
    _check_selection(cluster, role_list, limit_list)
    ssh = ssh_settings(spec, cluster, ssh_key, known_hosts)

    from freehold.deploy.artifacts.assets import AssetError
    from freehold.deploy.provision.driver import HostKeysRefused, run_deploy
    from freehold.deploy.provision.greenlets import patch_gevent

    patch_gevent()  # before the progress display starts its thread
    from freehold.deploy.provision.summary import closing_lines, summary_table

    out = err_console if json_out else console
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[counts]}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=out, transient=True) as bar:
            report = run_deploy(cluster, spec, role_list, limit_list, dry_run=dry_run,
                                ssh=ssh, secrets_path=secrets, view=PhaseBars(bar, out),
                                parallel=opts.parallel, host_timeout=opts.host_timeout,
                                batch=opts.batch, max_fail=opts.max_fail)
    except (SecretsError, AssetError) as e:
        fail(str(e))
    except HostKeysRefused as e:
        fail_lines(e.problems, code=EXIT_FAILED)
    if json_out:
        print_json(report.to_doc())
    else:
        console.print(summary_table(report))
        for line in closing_lines(report, str(spec)):
            console.print(line, highlight=False)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
    return report


PARALLEL_HELP = "Servers worked on at once (concurrent SSH sessions); default 50."
TIMEOUT_HELP = ("Seconds one server may take over one step (connecting, reading its facts, "
                "one operation) before it is cut off and reported; default 900.")
BATCH_HELP = ("Apply each role to N servers, or P% of its servers, at a time (like Ansible's "
              "serial); etcd, postgres, redis and media always run on all their servers.")
MAX_FAIL_HELP = ("Stop when more than P% of a batch failed (like Ansible's "
                 "max_fail_percentage; 0% stops at the first failed server).")


def plan(
    spec: SpecArg = DEFAULT_SPEC,
    roles: str | None = typer.Option(None, "--roles", help="Comma-separated roles."),
    limit: str | None = typer.Option(None, "--limit", help="Host or group."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_key: Path | None = typer.Option(None, "--ssh-key", help="Private key for SSH."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="known_hosts file."),
    secrets: Path | None = typer.Option(None, "--secrets", help="Encrypted secrets file "
                                        "(default: beside the spec)."),
    parallel: str | None = typer.Option(None, "--parallel", metavar="N", help=PARALLEL_HELP),
    host_timeout: str | None = typer.Option(None, "--host-timeout", metavar="SECONDS",
                                            help=TIMEOUT_HELP),
) -> None:
    """Show what a deploy would change, changing nothing."""
    opts = run_options(parallel, host_timeout)
    execute(spec, roles, limit, True, json_out, ssh_key, known_hosts, secrets, opts)


def deploy(
    spec: SpecArg = DEFAULT_SPEC,
    roles: str | None = typer.Option(None, "--roles", help="Comma-separated roles."),
    limit: str | None = typer.Option(None, "--limit", help="Host or group."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show changes, change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before changing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_key: Path | None = typer.Option(None, "--ssh-key", help="Private key for SSH."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="known_hosts file."),
    secrets: Path | None = typer.Option(None, "--secrets", help="Encrypted secrets file "
                                        "(default: beside the spec)."),
    batch: str | None = typer.Option(None, "--batch", metavar="N|P%", help=BATCH_HELP),
    max_fail: str | None = typer.Option(None, "--max-fail", metavar="P%", help=MAX_FAIL_HELP),
    parallel: str | None = typer.Option(None, "--parallel", metavar="N", help=PARALLEL_HELP),
    host_timeout: str | None = typer.Option(None, "--host-timeout", metavar="SECONDS",
                                            help=TIMEOUT_HELP),
) -> None:
    """Apply the roles of the spec to its servers (idempotent)."""
    opts = run_options(parallel, host_timeout, batch, max_fail)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            fail("deploy changes servers: pass --yes (or --dry-run to only look)")
        cluster = load_cluster(spec)
        if not typer.confirm(f"Deploy {roles or 'every role'} to {limit or 'every server'} "
                             f"of {cluster.name}?"):
            raise typer.Exit(EXIT_FAILED)
    execute(spec, roles, limit, dry_run, json_out, ssh_key, known_hosts, secrets, opts)


def rollback(
    spec: SpecArg = DEFAULT_SPEC,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before changing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_key: Path | None = typer.Option(None, "--ssh-key", help="Private key for SSH."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="known_hosts file."),
) -> None:
    """Return every app server to the previous release (one at a time, drained first)."""
    from rich.table import Table

    from freehold.deploy.provision.rolling import rollback as run_rollback

    cluster = load_cluster(spec)
    if not cluster.servers_with_role("app"):
        fail(f"{spec}: no server has the app role — nothing to roll back")
    if not yes:
        if not sys.stdin.isatty():
            fail("rollback changes servers: pass --yes")
        if not typer.confirm(f"Roll every app server of {cluster.name} back?"):
            raise typer.Exit(EXIT_FAILED)
    ssh = ssh_settings(spec, cluster, ssh_key, known_hosts)
    out = err_console if json_out else console
    with out.status("rolling back…") as status:
        report = run_rollback(cluster, ssh, progress=lambda m: status.update(m))
    if json_out:
        print_json(report.to_doc())
    else:
        table = Table(title=f"rollback of {cluster.name}", title_justify="left")
        for col in ("host", "role", "from", "to", "status", "s", "detail"):
            table.add_column(col)
        for st in report.steps:
            table.add_row(st.host, st.role, st.before or "-", st.after or "-", st.status,
                          f"{st.seconds:.1f}", st.detail)
        console.print(table)
        console.print(report.stopped or f"every server rolled back in {report.seconds:.1f} s",
                      highlight=False)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
