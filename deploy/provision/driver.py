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
from dataclasses import replace
from pathlib import Path
from typing import Any

from freehold.deploy.provision.context import DeployContext
from freehold.deploy.provision.greenlets import patch_gevent
from freehold.deploy.provision.progress import LogCapture, Progress, progress_handler
from freehold.deploy.provision.pyinfra_fork import (
    close_ssh_clients,
    connect_with_retries,
    if_will_change,
    prepare_hosts,
    run_ops_tolerant,
)
from freehold.deploy.provision.quorum import quorum_risks
from freehold.deploy.provision.report import DeployReport
from freehold.deploy.secrets import SecretStore, secrets_path_for
from freehold.deploy.spec import ClusterSpec
from freehold.deploy.ssh import HostKeyError, SSHSettings, pyinfra_data, refused_keys, settings_for
from freehold.roles.registry import ordered_roles, role_hosts
from freehold.roles.registry import role as role_of


def run_phase(ctx: DeployContext, role: str, step: Callable[..., Any], hosts: list[str],
              report: DeployReport, ssh_data: dict[str, Any],
              progress: Progress | None, parallel: int, connect_timeout: int) -> set[str]:
    """One role step on `hosts`; returns the hosts that failed or could not be reached."""
    from pyinfra.api import Config, State
    from pyinfra.api.connect import disconnect_all
    from pyinfra.api.exceptions import PyinfraError

    from freehold.deploy.inventory import build_inventory

    label = f"{role}: {getattr(step, 'deploy_name', step.__name__)}"
    inventory = build_inventory(ctx.spec, limit=hosts, ssh=ssh_data)
    config = Config(PARALLEL=max(1, min(len(hosts), parallel)),
                    CONNECT_TIMEOUT=connect_timeout, FAIL_PERCENT=None)
    state = State(inventory, config)
    totals = {"ops": 0}
    state.add_callback_handler(progress_handler(progress, label, totals))
    logs = LogCapture()
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
    from freehold.deploy.inventory import select_servers

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
