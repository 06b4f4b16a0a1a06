"""Run the roles of a spec on its servers through pyinfra's Python API.

Each role step is one phase: a fresh pyinfra State over the servers carrying the role (facts are
read after the previous phase's changes), hosts in parallel, operations in order. Results are
counted per host and role (operations changed / unchanged / failed). A host that fails or cannot
be reached is left out of the later phases and reported; the deploy goes on as long as the
servers lost so far leave every quorum intact (`placement.lost_reasons`), else it stops there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deploy.provision.context import DeployContext
from deploy.secrets import SecretStore, secrets_path_for
from deploy.spec import ClusterSpec
from deploy.spec.placement import lost_reasons
from deploy.ssh import HostKeyError, SSHSettings, pyinfra_data, refused_keys, settings_for
from roles.registry import ordered_roles, role_hosts
from roles.registry import role as role_of

_patched = False


def patch_gevent() -> None:
    """pyinfra's API needs gevent's monkey patching (the pyinfra CLI does it itself)."""
    global _patched
    if not _patched:
        import warnings

        from gevent import monkey

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monkey.patch_all()
        import gevent

        gevent.get_hub().exception_stream = None  # a dropped host is reported, not dumped
        _dump_on_sigusr1()
        _patched = True


def _dump_on_sigusr1() -> None:
    """`kill -USR1 <pid>` prints every greenlet's stack to stderr: what a run that seems stuck
    waits for (py-spy sees only gevent's hub)."""
    import signal
    import sys

    def dump(signum: int, frame: Any) -> None:
        from gevent.util import print_run_info

        print_run_info(file=sys.stderr)

    with contextlib.suppress(ValueError):  # not the main thread: no handler
        signal.signal(signal.SIGUSR1, dump)


@dataclass
class HostRoleResult:
    host: str
    role: str
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    status: str = "ok"          # ok | changed | failed | unreachable | skipped
    error: str = ""
    changes: list[str] = field(default_factory=list)

    def to_doc(self) -> dict[str, Any]:
        return {"host": self.host, "role": self.role, "status": self.status,
                "changed": self.changed, "unchanged": self.unchanged, "failed": self.failed,
                "error": self.error, "changes": self.changes}


@dataclass
class DeployReport:
    spec: str
    dry_run: bool
    roles: list[str]
    hosts: list[str]
    results: list[HostRoleResult] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0

    def result(self, host: str, role: str) -> HostRoleResult:
        for r in self.results:
            if r.host == host and r.role == role:
                return r
        r = HostRoleResult(host, role)
        self.results.append(r)
        return r

    @property
    def failed_hosts(self) -> list[str]:
        bad = {r.host for r in self.results if r.status in ("failed", "unreachable")}
        return [h for h in self.hosts if h in bad]

    @property
    def skipped_hosts(self) -> list[str]:
        return [h for h in self.hosts if any(r.host == h and r.status == "skipped"
                                             for r in self.results)]

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.failed_hosts and self.stopped is None

    def rerun_hosts(self) -> list[str]:
        bad = set(self.failed_hosts) | set(self.skipped_hosts)
        return [h for h in self.hosts if h in bad]

    def to_doc(self) -> dict[str, Any]:
        return {"spec": self.spec, "dry_run": self.dry_run, "ok": self.ok,
                "seconds": round(self.seconds, 1), "roles": self.roles, "hosts": self.hosts,
                "changed": self.changed, "failed_hosts": self.failed_hosts,
                "rerun": self.rerun_hosts(), "stopped": self.stopped,
                "results": [r.to_doc() for r in self.results]}


class _LogCapture(logging.Handler):
    """Collects pyinfra's warnings and errors (per host prefix) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError, KeyError):  # its args do not fit its format string
            msg = str(record.msg)
        import click

        self.lines.append(click.unstyle(msg).strip())

    def for_host(self, name: str) -> str:
        hits = [line for line in self.lines if f"[{name}]" in line or name in line.split()[:1]]
        return " | ".join(hits[-4:])[-600:]


Progress = Callable[[str, int, int], None]   # (description, done, total)


def _progress_handler(report: Progress | None, label: str, totals: dict[str, int]) -> Any:
    from pyinfra.api.state import BaseStateCallback

    class Handler(BaseStateCallback):
        done = 0

        @staticmethod
        def operation_host_success(state: Any, host: Any, op_hash: Any,
                                   retry_count: int = 0) -> None:
            Handler.done += 1
            if report:
                report(label, Handler.done, totals["ops"])

        @staticmethod
        def operation_host_error(state: Any, host: Any, op_hash: Any, retry_count: int = 0,
                                 max_retries: int = 0) -> None:
            Handler.done += 1
            if report:
                report(label, Handler.done, totals["ops"])

    return Handler()


def _if_will_change(op_data: Any) -> bool:
    """For a dry run: an operation guarded by `_if=<op>.did_change` runs only when that
    operation will change (pyinfra checks `_if` at execution only)."""
    conds = op_data.global_arguments.get("_if")
    if not conds:
        return True
    for cond in conds if isinstance(conds, list) else [conds]:
        meta = getattr(cond, "__self__", None)
        if (meta is not None and getattr(cond, "__name__", "") == "did_change"
                and not meta.will_change):
            return False
    return True


def run_ops_tolerant(state: Any, errors: dict[str, str]) -> None:
    """pyinfra's `run_ops` (each operation on every active host, in order), except that an
    exception on one host (its SSH connection dropped: EOFError, socket errors) fails that
    host only, where pyinfra would abort the whole run."""
    import gevent
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import _run_host_op_with_context
    from pyinfra.context import ctx_state

    def note(host: Any, exc: BaseException) -> None:
        text = str(exc).strip()
        errors[host.name] = (f"{type(exc).__name__}: {text}"[-600:] if text else
                             f"connection lost mid-run ({type(exc).__name__})")

    state.is_executing = True
    with ctx_state.use(state):
        for op_hash in state.get_op_order():
            state.trigger_callbacks("operation_start", op_hash)
            meta = state.get_op_meta(op_hash)
            hosts = list(state.inventory.get_active_hosts())
            failed = set()
            if meta.global_arguments.get("_serial"):
                for host in hosts:
                    try:
                        ok = _run_host_op_with_context(state, host, op_hash)
                    except Exception as e:  # noqa: BLE001 - that host only
                        note(host, e)
                        ok = False
                    if not ok:
                        failed.add(host)
            else:
                glets = {state.pool.spawn(_run_host_op_with_context, state, host, op_hash): host
                         for host in hosts}
                gevent.joinall(list(glets))
                for glet, host in glets.items():
                    if glet.exception is not None:
                        note(host, glet.exception)
                        failed.add(host)
                    elif not glet.value:
                        failed.add(host)
            with contextlib.suppress(PyinfraError):  # "no hosts remaining": reported below
                state.fail_hosts(failed)
            state.trigger_callbacks("operation_end", op_hash)


def connect_with_retries(state: Any, attempts: int = 3, pause: float = 5.0) -> None:
    """pyinfra's `connect_all`, then up to `attempts - 1` more tries for the hosts that did not
    answer (an sshd slow to accept on a loaded machine is not a dead server)."""
    from pyinfra.api.connect import connect_all
    from pyinfra.api.exceptions import PyinfraError

    with contextlib.suppress(PyinfraError):  # every host unreachable: counted by the caller
        connect_all(state)
    for _ in range(attempts - 1):
        missing = [h for h in state.inventory if h not in state.active_hosts]
        if not missing:
            return
        time.sleep(pause)
        for h in missing:
            h.connect(show_errors=False)
            if h.connected:
                state.failed_hosts.discard(h)
                state.activate_host(h)


def prepare_hosts(state: Any, step: Callable[..., Any], ctx: DeployContext
                  ) -> list[tuple[Any, Exception]]:
    """Run `step`'s deploy code for every active host, each in a greenlet of the state's pool,
    as pyinfra's CLI loads a deploy file: the code reads facts over SSH, one round trip at a
    time, so one host after the other a phase took the sum of every host's round trips (and
    grew with the number of servers). Returns the hosts whose code raised, with the error."""
    import gevent
    from pyinfra.api.deploy import add_deploy
    from pyinfra.context import ctx_state

    def one(h: Any) -> Exception | None:
        try:
            add_deploy(state, step, ctx, host=h)  # (the host context is per greenlet)
        except Exception as e:  # noqa: BLE001 - reported for that host
            return e
        return None

    with ctx_state.use(state):  # set here, once: a greenlet leaving must not unset it
        jobs = [(h, state.pool.spawn(one, h)) for h in list(state.active_hosts)]
        gevent.joinall([g for _, g in jobs])
    out: list[tuple[Any, Exception]] = []
    for h, g in jobs:
        e = g.value if g.successful() else g.exception
        if e is not None:
            out.append((h, e if isinstance(e, Exception) else RuntimeError(str(e))))
    return out


def run_phase(ctx: DeployContext, role: str, step: Callable[..., Any], hosts: list[str],
              report: DeployReport, ssh_data: dict[str, Any],
              progress: Progress | None, parallel: int, connect_timeout: int) -> set[str]:
    """One role step on `hosts`; returns the hosts that failed or could not be reached."""
    from pyinfra.api import Config, State
    from pyinfra.api.connect import disconnect_all
    from pyinfra.api.exceptions import PyinfraError

    from deploy.inventory import build_inventory

    label = f"{role}: {getattr(step, 'deploy_name', step.__name__)}"
    inventory = build_inventory(ctx.spec, limit=hosts, ssh=ssh_data)
    config = Config(PARALLEL=max(1, min(len(hosts), parallel)),
                    CONNECT_TIMEOUT=connect_timeout, FAIL_PERCENT=None)
    state = State(inventory, config)
    totals = {"ops": 0}
    state.add_callback_handler(_progress_handler(progress, label, totals))
    logs = _LogCapture()
    pyinfra_logger = logging.getLogger("pyinfra")
    pyinfra_logger.addHandler(logs)
    pyinfra_logger.propagate = False
    failed: set[str] = set()
    errors: dict[str, str] = {}
    try:
        if progress:
            progress(f"{label} (connecting)", 0, 1)
        connect_with_retries(state)
        for h in inventory:
            if h not in state.active_hosts:
                failed.add(h.name)
                res = report.result(h.name, role)
                res.status, res.error = "unreachable", logs.for_host(h.name) or "cannot connect"
        for h, e in prepare_hosts(state, step, ctx):  # one host's broken facts fail that host
            errors[h.name] = f"{type(e).__name__}: {e}"[-600:]
            failed.add(h.name)
            with contextlib.suppress(PyinfraError):
                state.fail_hosts({h})
        totals["ops"] = sum(len(state.ops[h]) for h in state.active_hosts)
        if progress:
            progress(label, 0, max(1, totals["ops"]))
        if not ctx.dry_run and state.active_hosts:
            run_ops_tolerant(state, errors)
        for h in inventory:
            if h.name in failed and h.name not in errors:
                continue
            res = report.result(h.name, role)
            ops = state.ops.get(h, {})
            for op_hash, op_data in ops.items():
                meta = op_data.operation_meta
                names = ", ".join(sorted(n.split(" | ")[-1]
                                         for n in state.get_op_meta(op_hash).names)) or op_hash
                if ctx.dry_run:
                    changes = bool(meta.will_change) and _if_will_change(op_data)
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
            if h in state.failed_hosts or h.name in errors:
                failed.add(h.name)
                res.status = "failed"
                res.error = errors.get(h.name) or logs.for_host(h.name) or "an operation failed"
            elif res.status not in ("failed", "unreachable"):
                res.status = "changed" if (res.changed or res.status == "changed") else "ok"
    finally:
        try:
            disconnect_all(state)
            close_ssh_clients(inventory)
        finally:
            pyinfra_logger.removeHandler(logs)
    return failed


def close_ssh_clients(inventory: Any) -> None:
    """Close each host's SSH connection: pyinfra 3's `disconnect` leaves the paramiko client
    open, so every phase would leak one connection (and a reader greenlet) per host."""
    for h in inventory:
        client = getattr(getattr(h, "connector", None), "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


QUORUM_ROLES = ("etcd", "postgres", "redis", "media")


def quorum_risks(spec: ClusterSpec, lost: set[str]) -> list[str]:
    """What losing these servers does to the quorum-keeping roles ([] = safe to go on).
    Serving roles (one app server down) never stop a deploy."""
    if not lost:
        return []
    if {s.name for s in spec.servers} <= lost:
        return ["every server failed"]
    return [r for r in lost_reasons(spec, lost) if r.startswith(QUORUM_ROLES)]


class HostKeysRefused(Exception):
    """Servers whose host key was refused: one line each (server, fingerprints, fix)."""

    def __init__(self, errors: list[HostKeyError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.problems = [str(e) for e in errors]


def run_deploy(spec: ClusterSpec, spec_path: Path, roles: Iterable[str] | None = None,
               limit: Iterable[str] | None = None, dry_run: bool = False,
               ssh: SSHSettings | None = None,
               secrets_path: Path | None = None, progress: Progress | None = None,
               parallel: int = 50, connect_timeout: int = 10,
               assets_dir: Path | None = None, secrets_key: bytes | None = None
               ) -> DeployReport:
    """Apply the roles (all when None) in dependency order to the selected servers.
    Raises HostKeysRefused, before changing anything, when a server's host key is unknown or
    changed (`ssh`: default, the spec's own settings)."""
    patch_gevent()
    from deploy.inventory import select_servers

    started = time.monotonic()
    role_names = ordered_roles(roles)
    servers = select_servers(spec, None, limit)
    ssh = replace(ssh or settings_for(spec_path, spec), connect_timeout=connect_timeout)
    refused = refused_keys(servers, ssh)
    if refused:
        raise HostKeysRefused(refused)
    store = SecretStore(secrets_path or secrets_path_for(spec_path), spec.name, key=secrets_key)
    secrets = store.ensure([s.name for s in spec.servers], write=not dry_run)
    ctx = DeployContext(spec=spec, secrets=secrets, dry_run=dry_run,
                        roles=tuple(role_names))
    if assets_dir is not None:
        ctx.assets_dir = assets_dir
    ssh_data = pyinfra_data(ssh, servers, ctx.assets_dir / "known_hosts")
    report = DeployReport(spec=spec.name, dry_run=dry_run, roles=role_names,
                          hosts=[s.name for s in servers])
    lost: set[str] = set()
    for role in role_names:
        reach = set(role_hosts(spec, role))
        hosts = [s.name for s in servers if s.name in reach]
        if not hosts:
            continue
        for step in role_of(role).steps:
            todo = [h for h in hosts if h not in lost]
            for h in hosts:
                if h in lost and report.result(h, role).status not in ("failed",
                                                                       "unreachable"):
                    report.result(h, role).status = "skipped"
            if not todo:
                continue
            lost |= run_phase(ctx, role, step, todo, report, ssh_data, progress, parallel,
                              connect_timeout)
            reasons = quorum_risks(spec, lost)
            if reasons:
                report.stopped = (f"stopped after {role}: with {', '.join(sorted(lost))} "
                                  f"down, going on would risk: {'; '.join(reasons)}")
                break
        if report.stopped:
            for later in role_names[role_names.index(role) + 1:]:
                for s in servers:
                    if later in s.roles:
                        report.result(s.name, later).status = "skipped"
            break
    report.seconds = time.monotonic() - started
    return report
