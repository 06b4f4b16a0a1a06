"""Run the roles of a spec on its servers through pyinfra's Python API.

Each role step is one phase: a fresh pyinfra State over the servers carrying the role (facts are
read after the previous phase's changes), hosts in parallel (at most `parallel` at once),
operations in order. The SSH connections are opened once and kept across phases
(pyinfra_fork.Connections). An operation's facts are read once: at prepare time, and read again
at execution only on a host where an earlier operation changed something
(pyinfra_fork.run_ops_tolerant). Results are counted per host and role (operations changed /
unchanged / failed, seconds). A host that fails, cannot be reached or does not answer within
`host_timeout` seconds for one step is left out of the later phases and reported; the deploy goes
on as long as the servers lost so far leave every quorum intact (`placement.lost_reasons`) and
no batch failed beyond `max_fail` %, else it stops there.

With `batch`, each role is applied to its servers a batch at a time (all of the role's steps on
one batch, then the next: Ansible's `serial`); the roles whose members start together
(batches.TOGETHER) run on all their servers at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from freehold.deploy.provision.batches import BatchSize, over_budget, split
from freehold.deploy.provision.context import DeployContext
from freehold.deploy.provision.greenlets import patch_gevent
from freehold.deploy.provision.progress import LogCapture, PhaseTracker, PhaseView, Progress
from freehold.deploy.provision.pyinfra_fork import (
    Connections,
    bound_commands,
    connect_with_retries,
    connection_lost,
    facts_read_once,
    if_will_change,
    one_line,
    prepare_hosts,
    run_ops_tolerant,
)
from freehold.deploy.provision.quorum import quorum_risks
from freehold.deploy.provision.report import BatchResult, DeployReport
from freehold.deploy.secrets import SecretStore, secrets_path_for
from freehold.deploy.spec import ClusterSpec
from freehold.deploy.ssh import HostKeyError, SSHSettings, pyinfra_data, refused_keys, settings_for
from freehold.roles.registry import ordered_roles, role_hosts
from freehold.roles.registry import role as role_of

DEFAULT_PARALLEL = 50
# the longest one server may take over one step (connecting, reading its facts, one operation):
# above the roles' own longest bounded waits (app roll-out 600 s, Patroni bootstrap 300 s)
DEFAULT_HOST_TIMEOUT = 900.0
CONNECT_ATTEMPTS = 3


@dataclass
class PhaseOptions:
    """How a phase runs: hosts at once, per-host step bound, SSH connect timeout and tries."""

    parallel: int = DEFAULT_PARALLEL
    host_timeout: float | None = DEFAULT_HOST_TIMEOUT
    connect_timeout: int = 10
    connect_attempts: int = CONNECT_ATTEMPTS
    progress: Progress | None = None
    view: PhaseView | None = None


def run_phase(ctx: DeployContext, role: str, step: Callable[..., Any], hosts: list[str],
              report: DeployReport, ssh_data: dict[str, Any], conns: Connections,
              opts: PhaseOptions, label: str = "") -> set[str]:
    """One role step on `hosts`; returns the hosts that failed, could not be reached or were
    cut off."""
    from pyinfra.api import Config, State
    from pyinfra.api.exceptions import PyinfraError

    from freehold.deploy.inventory import build_inventory

    label = label or step_label(role, step)
    inventory = build_inventory(ctx.spec, limit=hosts, ssh=ssh_data)
    config = Config(PARALLEL=max(1, min(len(hosts), opts.parallel)),
                    CONNECT_TIMEOUT=opts.connect_timeout, FAIL_PERCENT=None)
    state = State(inventory, config)
    state.add_callback_handler(conns.handler())
    tracker = PhaseTracker(label, [h.name for h in inventory], opts.progress, opts.view)
    logs = LogCapture()
    pyinfra_logger = logging.getLogger("pyinfra")
    pyinfra_logger.addHandler(logs)
    pyinfra_logger.propagate = False
    failed: set[str] = set()
    errors: dict[str, str] = {}
    ticker = ticking(tracker)
    try:
        conns.adopt(inventory)
        connect_with_retries(state, attempts=opts.connect_attempts,
                             host_timeout=opts.host_timeout, tracker=tracker)
        for h in inventory:
            if h not in state.active_hosts:
                failed.add(h.name)
                tracker.fail(h.name)
                res = report.result(h.name, role)
                res.status = "unreachable"
                res.error = conns.error(h.name)
        bound_commands(inventory, opts.host_timeout)
        with facts_read_once(inventory) as facts:
            prepared = prepare_hosts(state, step, ctx, tracker, facts)
        for h, e in prepared:
            errors[h.name] = one_line(f"{type(e).__name__}: {e}")  # broken facts: that host
            failed.add(h.name)
            with contextlib.suppress(PyinfraError):
                state.fail_hosts({h})
        tracker.plan({h.name: 0 if ctx.dry_run else len(state.ops[h])
                      for h in state.active_hosts})
        if not ctx.dry_run and state.active_hosts:
            run_ops_tolerant(state, errors, tracker)
        for h in inventory:
            if h.name in failed and h.name not in errors:
                continue
            res = report.result(h.name, role)
            res.seconds += tracker.seconds.get(h.name, 0.0)
            count_ops(state, h, res, ctx.dry_run)
            if h in state.failed_hosts or h.name in errors:
                failed.add(h.name)
                tracker.fail(h.name)
                res.status = "failed"
                res.error = failure_reason(h, errors.get(h.name), logs.for_host(h.name))
            elif res.status not in ("failed", "unreachable"):
                res.status = "changed" if (res.changed or res.status == "changed") else "ok"
        tracker.finish([h.name for h in inventory if h.name not in failed])
    finally:
        ticker.kill(block=False)
        try:
            conns.keep(inventory, failed)
        finally:
            pyinfra_logger.removeHandler(logs)
    return failed


def ticking(tracker: PhaseTracker, every: float = 1.0) -> Any:
    """A greenlet telling the views once a second (the slowest host's seconds grow while no
    host finishes a step); killed when the phase ends."""
    import gevent

    def tick() -> None:
        while not tracker.status.finished:
            gevent.sleep(every)
            if not tracker.status.finished:
                tracker.emit(force=True)

    return gevent.spawn(tick)


def failure_reason(h: Any, error: str | None, logged: str) -> str:
    """One line: why a host failed in a phase (its connection lost first, when it was)."""
    if error and "HostTimedOut" in error:
        return error
    if connection_lost(h):
        first = (error or logged or "").split(" | ")[0]
        return one_line(f"SSH connection lost mid-run (server down or restarted): {first}"
                        if first else "SSH connection lost mid-run (server down or restarted)")
    return error or one_line(logged or "an operation failed")


def step_label(role: str, step: Callable[..., Any]) -> str:
    name = str(getattr(step, "deploy_name", step.__name__))
    return name if name == role or name.startswith(f"{role}:") else f"{role}: {name}"


def count_ops(state: Any, h: Any, res: Any, dry_run: bool) -> None:
    """Add one host's operations of this phase to its result (changed / unchanged / failed)."""
    for op_hash, op_data in state.ops.get(h, {}).items():
        meta = op_data.operation_meta
        names = ", ".join(sorted(n.split(" | ")[-1]
                                 for n in state.get_op_meta(op_hash).names)) or op_hash
        if dry_run:
            changes = bool(meta.will_change) and if_will_change(op_data)
            res.changed += int(changes)
            res.unchanged += int(not changes)
            if changes:
                res.changes.append(names)
        elif not meta.is_complete():
            continue
        elif meta.did_error():
            res.failed += 1
            res.changes.append(f"FAILED {names}")
        elif meta.did_change():
            res.changed += 1
            res.changes.append(names)
        else:
            res.unchanged += 1


class HostKeysRefused(Exception):
    """Servers whose host key was refused: one line each (server, fingerprints, fix)."""

    def __init__(self, errors: list[HostKeyError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.problems = [str(e) for e in errors]


def run_deploy(spec: ClusterSpec, spec_path: Path, roles: Iterable[str] | None = None,
               limit: Iterable[str] | None = None, dry_run: bool = False,
               ssh: SSHSettings | None = None,
               secrets_path: Path | None = None, progress: Progress | None = None,
               parallel: int = DEFAULT_PARALLEL, connect_timeout: int = 10,
               assets_dir: Path | None = None, secrets_key: bytes | None = None,
               batch: BatchSize | None = None, max_fail: float | None = None,
               host_timeout: float | None = DEFAULT_HOST_TIMEOUT,
               view: PhaseView | None = None) -> DeployReport:
    """Apply the roles (all when None) in dependency order to the selected servers.
    Raises HostKeysRefused, before changing anything, when a server's host key is unknown or
    changed (`ssh`: default, the spec's own settings)."""
    patch_gevent()
    from freehold.deploy.inventory import select_servers

    started = time.monotonic()
    role_names = ordered_roles(roles)
    servers = select_servers(spec, None, limit)
    ssh = replace(ssh or settings_for(spec_path, spec), connect_timeout=connect_timeout,
                  parallel=parallel)
    store = SecretStore(secrets_path or secrets_path_for(spec_path), spec.name, key=secrets_key)
    secrets = store.ensure([s.name for s in spec.servers], write=not dry_run)
    ctx = DeployContext(spec=spec, secrets=secrets, dry_run=dry_run,
                        roles=tuple(role_names))
    if assets_dir is not None:
        ctx.assets_dir = assets_dir
    ssh_data = pyinfra_data(ssh, servers, ctx.assets_dir / "known_hosts")
    report = DeployReport(spec=spec.name, dry_run=dry_run, roles=role_names,
                          hosts=[s.name for s in servers],
                          batch=str(batch) if batch else None, max_fail=max_fail)
    opts = PhaseOptions(parallel=parallel, host_timeout=host_timeout,
                        connect_timeout=connect_timeout, progress=progress, view=view)
    conns = Connections()
    lost: set[str] = set()
    counted: set[str] = set()
    try:
        touched = set().union(*(role_hosts(spec, r) for r in role_names))
        down = connect_first(ctx, [s for s in servers if s.name in touched], ssh, ssh_data,
                             conns, opts, report)
        lost = set(down)
        if report.stopped:
            skip_from(report, spec, role_names, servers)
        for role in role_names if not report.stopped else ():
            reach = set(role_hosts(spec, role))
            hosts = [s.name for s in servers if s.name in reach]
            role_started, role_cpu = time.monotonic(), time.process_time()
            batches = split(hosts, batch, role)
            for i, members in enumerate(batches, 1):
                b = BatchResult(role=role, index=i, of=len(batches), hosts=members)
                # a server unreachable from the start fails the first batch it is in
                b.failed = [h for h in members if h in down and h not in counted]
                counted.update(b.failed)
                run_batch(ctx, role, members, b, lost, report, ssh_data, conns, opts)
                report.batches.append(b)
                if report.stopped is None and over_budget(len(b.failed), len(members),
                                                          max_fail):
                    b.stopped = True
                    report.stopped = (
                        f"stopped after {role} batch {i}/{len(batches)}: "
                        f"{len(b.failed)} of {len(members)} server(s) failed "
                        f"({100 * len(b.failed) / len(members):.0f}% > --max-fail "
                        f"{max_fail:g}%): {', '.join(b.failed)}")
                if report.stopped:
                    for later in batches[i:]:
                        for h in later:
                            res = report.result(h, role)
                            if res.status not in ("failed", "unreachable"):
                                res.status = "skipped"
                    break
            if hosts:
                report.role_seconds[role] = time.monotonic() - role_started
                report.role_cpu_seconds[role] = time.process_time() - role_cpu
            if report.stopped:
                skip_from(report, spec, role_names[role_names.index(role) + 1:], servers)
                break
    finally:
        conns.close_all()
    report.ssh_connections = conns.opened
    report.ssh_connect_failures = conns.failed_attempts
    report.seconds = time.monotonic() - started
    return report


def skip_from(report: DeployReport, spec: ClusterSpec, roles: list[str],
              servers: list[Any]) -> None:
    """The deploy stopped: these roles are skipped on their servers (failures kept)."""
    for role in roles:
        carry = set(role_hosts(spec, role))
        for s in servers:
            if s.name in carry:
                res = report.result(s.name, role)
                if res.status not in ("failed", "unreachable"):
                    res.status = "skipped"


def connect_first(ctx: DeployContext, servers: list[Any], ssh: SSHSettings,
                  ssh_data: dict[str, Any], conns: Connections, opts: PhaseOptions,
                  report: DeployReport) -> set[str]:
    """Connect to every server the deploy touches once, before any phase (the connections are
    kept for all of them). pyinfra checks host keys strictly against the pinned known ones, so
    a server whose key is unknown or changed cannot connect: those are looked at again to say
    why, and HostKeysRefused is raised before anything changed. Returns the servers that
    cannot be reached (reported unreachable for each of their roles; no phase waits for them
    again); stops the deploy there when losing them breaks a quorum."""
    from pyinfra.api import Config, State

    from freehold.deploy.inventory import build_inventory

    if not servers:
        return set()
    names = [s.name for s in servers]
    inventory = build_inventory(ctx.spec, limit=names, ssh=ssh_data)
    state = State(inventory, Config(PARALLEL=max(1, min(len(names), opts.parallel)),
                                    CONNECT_TIMEOUT=opts.connect_timeout, FAIL_PERCENT=None))
    state.add_callback_handler(conns.handler())
    tracker = PhaseTracker("connecting", names, opts.progress, opts.view)
    logs = LogCapture()
    pyinfra_logger = logging.getLogger("pyinfra")
    pyinfra_logger.addHandler(logs)
    pyinfra_logger.propagate = False
    down: set[str] = set()
    try:
        connect_with_retries(state, attempts=opts.connect_attempts,
                             host_timeout=opts.host_timeout, tracker=tracker)
        down = {h.name for h in inventory if not h.connected}
        conns.keep(inventory, down)
    finally:
        pyinfra_logger.removeHandler(logs)
    for h in down:
        tracker.fail(h)
    tracker.finish([n for n in names if n not in down])
    refused = refused_keys([s for s in servers if s.name in down and conns.key_problem(s.name)],
                           ssh)
    if refused:
        conns.close_all()
        raise HostKeysRefused(refused)
    for name in down:
        reason = conns.error(name)
        for role in report.roles:
            if name in set(role_hosts(ctx.spec, role)):
                res = report.result(name, role)
                res.status, res.error = "unreachable", reason
    reasons = quorum_risks(ctx.spec, down)
    if reasons:
        report.stopped = (f"stopped before any change: with {', '.join(sorted(down))} "
                          f"unreachable, going on would risk: {'; '.join(reasons)}")
    return down


def run_batch(ctx: DeployContext, role: str, members: list[str], b: BatchResult,
              lost: set[str], report: DeployReport, ssh_data: dict[str, Any],
              conns: Connections, opts: PhaseOptions) -> None:
    """Every step of `role` on one batch of its servers; stops the deploy (report.stopped)
    when the servers lost so far break a quorum."""
    started = time.monotonic()
    steps = role_of(role).steps
    for step in steps:
        todo = [h for h in members if h not in lost]
        for h in members:
            if h in lost and report.result(h, role).status not in ("failed", "unreachable"):
                report.result(h, role).status = "skipped"
        if not todo:
            continue
        label = step_label(role, step) + (f" [batch {b.index}/{b.of}]" if b.of > 1 else "")
        failed = run_phase(ctx, role, step, todo, report, ssh_data, conns, opts, label)
        lost |= failed
        b.failed.extend(h for h in todo if h in failed and h not in b.failed)
        reasons = quorum_risks(ctx.spec, lost)
        if reasons:
            report.stopped = (f"stopped after {role}: with {', '.join(sorted(lost))} "
                              f"down, going on would risk: {'; '.join(reasons)}")
            break
    b.seconds = time.monotonic() - started
