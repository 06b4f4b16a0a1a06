"""Where Freehold runs pyinfra's own machinery its own way: the pieces of pyinfra 3's API it
re-implements or reaches into, in one module, each saying which pyinfra function it follows.

tests/unit/test_pyinfra_fork.py fails when the installed pyinfra changes what these rely on: the
source of the functions they mirror (its hash is recorded below) and the internal names they
call. Review this module against the new pyinfra, then record the new hashes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from freehold.deploy.provision.context import DeployContext

# sha256[:16] of the pyinfra source each piece follows, as reviewed (pyinfra 3.x)
MIRRORED = {
    "pyinfra.api.operations.run_ops": "d5a0a7a6a4ebf8fa",
    "pyinfra.api.operations._run_host_op_with_context": "969292f0a264284f",
    "pyinfra.api.connect.connect_all": "1b583ac2ff6ac44d",
}


def if_will_change(op_data: Any) -> bool:
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


def close_ssh_clients(inventory: Any) -> None:
    """Close each host's SSH connection: pyinfra 3's `disconnect` leaves the paramiko client
    open, so every phase would leak one connection (and a reader greenlet) per host."""
    for h in inventory:
        client = getattr(getattr(h, "connector", None), "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
