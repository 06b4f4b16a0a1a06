"""Where Freehold runs pyinfra's own machinery its own way: the pieces of pyinfra 3's API it
re-implements or reaches into, in one module, each saying which pyinfra function it follows.

tests/unit/test_pyinfra_fork.py fails when the installed pyinfra changes what these rely on: the
source of the functions they mirror (its hash is recorded below) and the internal names they
call. Review this module against the new pyinfra, then record the new hashes.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from freehold.deploy.provision.context import DeployContext
from freehold.deploy.provision.factbatch import FactCache
from freehold.deploy.provision.progress import PhaseTracker

# sha256[:16] of the pyinfra source each piece follows, as reviewed (pyinfra 3.x)
MIRRORED = {
    "pyinfra.api.operations.run_ops": "d5a0a7a6a4ebf8fa",
    "pyinfra.api.operations._run_host_op_with_context": "969292f0a264284f",
    "pyinfra.api.connect.connect_all": "1b583ac2ff6ac44d",
    "pyinfra.api.operations._run_host_op": "699174f70828f914",
    "pyinfra.api.facts._get_fact": "4bae739f846172aa",  # followed by factbatch.py
}


# how long the other hosts of a phase wait for the scout's plan (prepare_hosts)
SCOUT_WAIT_S = 20.0


class HostTimedOut(Exception):
    """A host that did not answer one command (a fact read, an operation's command, a file
    transfer) in time. Not a TimeoutError on purpose: pyinfra takes a TimeoutError from a fact's
    command as "no output" and returns the fact's default, where this must fail the host."""


def bound_commands(inventory: Any, seconds: float | None) -> None:
    """Bound every remote command and file transfer of these hosts to `seconds` (a paused
    server is cut off, not waited for: paramiko waits up to an hour for a channel to open on a
    server that stopped answering). Wraps each host's own SSH connector, nothing global."""
    import gevent

    if not seconds:
        return
    for h in inventory:
        connector = h.connector
        for name in ("run_shell_command", "put_file", "get_file"):
            inner = getattr(connector, name, None)
            if inner is None:
                continue

            def bounded(*args: Any, _inner: Any = inner, _name: str = name,
                        **kwargs: Any) -> Any:
                what = "to one command" if _name == "run_shell_command" else "to a file transfer"
                with gevent.Timeout(seconds, HostTimedOut(timeout_reason(seconds, what))):
                    return _inner(*args, **kwargs)

            setattr(connector, name, bounded)


def timeout_reason(seconds: float, what: str) -> str:
    return (f"no answer within {seconds:g} s {what} (--host-timeout): the server hangs or is "
            "overloaded — cut off")


def one_line(text: str, limit: int = 300) -> str:
    """An error as one line: its lines joined, the tail kept."""
    flat = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return flat if len(flat) <= limit else "…" + flat[-(limit - 1):]


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


def run_ops_tolerant(state: Any, errors: dict[str, str], tracker: PhaseTracker | None = None,
                     reuse_plan: bool = True) -> None:
    """pyinfra's `run_ops` (each operation on every active host, in order), except that:
    - an exception on one host (its SSH connection dropped: EOFError, socket errors) fails that
      host only, where pyinfra would abort the whole run;
    - a host whose command got no answer in time (`bound_commands`: HostTimedOut) fails alone;
    - with `reuse_plan`, an operation the prepare stage found would change nothing is not
      evaluated again (its facts read a second time) while nothing has changed on that host
      since: pyinfra re-runs every operation's generator at execution, so a no-op deploy read
      every fact twice. Once an operation changed something on a host, its later operations
      are evaluated again there, against facts read after that change."""
    import gevent
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import _run_host_op_with_context
    from pyinfra.context import ctx_state

    changed_hosts: set[Any] = set()

    def note(host: Any, exc: BaseException) -> None:
        text = str(exc).strip()
        errors[host.name] = one_line(f"{type(exc).__name__}: {text}" if text else
                                     f"connection lost mid-run ({type(exc).__name__})")

    def one(host: Any, op_hash: str) -> bool:
        if tracker:
            tracker.begin(host.name)
        ok = False
        try:
            if reuse_plan and host not in changed_hosts and _planned_no_change(state, host,
                                                                                 op_hash):
                ok = _complete_unchanged(state, host, op_hash)
                return ok
            ok = bool(_run_host_op_with_context(state, host, op_hash))
            meta = _op_meta(state, host, op_hash)
            if meta is not None and meta.is_complete() and meta.did_change():
                changed_hosts.add(host)
            return ok
        except Exception as e:  # noqa: BLE001 - that host only
            note(host, e)
            ok = False
            return False
        finally:
            if tracker:
                tracker.end(host.name, ok)

    state.is_executing = True
    with ctx_state.use(state):
        for op_hash in state.get_op_order():
            state.trigger_callbacks("operation_start", op_hash)
            meta = state.get_op_meta(op_hash)
            hosts = list(state.inventory.get_active_hosts())
            failed = set()
            if meta.global_arguments.get("_serial"):
                for host in hosts:
                    if not one(host, op_hash):
                        failed.add(host)
            else:
                glets = {state.pool.spawn(one, host, op_hash): host for host in hosts}
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


def _op_meta(state: Any, host: Any, op_hash: str) -> Any:
    op_data = state.ops.get(host, {}).get(op_hash)
    return op_data.operation_meta if op_data is not None else None


def _planned_no_change(state: Any, host: Any, op_hash: str) -> bool:
    """The prepare stage ran this operation's generator to its end and it yielded nothing."""
    meta = _op_meta(state, host, op_hash)
    return meta is not None and getattr(meta, "_maybe_is_change", None) is False


def _complete_unchanged(state: Any, host: Any, op_hash: str) -> bool:
    """What pyinfra's `_run_host_op` records for an operation that ran no command, without
    running its generator (reading its facts) again."""
    from pyinfra.connectors.util import CommandOutput

    state.trigger_callbacks("operation_host_start", host, op_hash)
    results = state.get_results_for_host(host)
    results.ops += 1
    results.success_ops += 1
    state.ops[host][op_hash].operation_meta.set_complete(True, [], CommandOutput([]))
    state.trigger_callbacks("operation_host_success", host, op_hash, 0)
    return True


# a server that dies (powered off, its network gone) answers nothing, not even a reset: TCP
# would retransmit for ~15 minutes before giving up, and a command in flight waited for
# --host-timeout. SSH keepalives every KEEPALIVE_S on an otherwise idle connection, and a
# connection whose sent data stays unacknowledged DEAD_PEER_S is dropped (TCP_USER_TIMEOUT),
# as OpenSSH's ServerAliveInterval/ServerAliveCountMax do: the deploy learns in seconds.
KEEPALIVE_S = 10
DEAD_PEER_S = 30


def notice_dead_peer(h: Any, keepalive_s: int = KEEPALIVE_S,
                     dead_after_s: int = DEAD_PEER_S) -> bool:
    """Keepalives and a bound on unacknowledged data on this host's SSH connection."""
    import socket

    client = getattr(getattr(h, "connector", None), "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None:
        return False
    transport.set_keepalive(keepalive_s)
    sock = getattr(transport, "sock", None)
    if sock is None or not hasattr(socket, "TCP_USER_TIMEOUT"):
        return False
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, dead_after_s * 1000)
        return True
    return False


def connect_with_retries(state: Any, attempts: int = 3, pause: float = 2.0,
                         backoff: float = 2.0, host_timeout: float | None = None,
                         tracker: PhaseTracker | None = None) -> None:
    """pyinfra's `connect_all` (every host of the inventory in the state's pool, the connected
    ones activated), then up to `attempts - 1` more rounds for the hosts that did not answer,
    side by side, after a pause growing by `backoff` each round (with jitter, so hundreds of
    retries do not hit sshd's MaxStartups at once): an sshd slow to accept on a loaded machine
    is not a dead server. A host already connected (a connection kept from an earlier phase)
    is only activated. Each attempt is bounded by `host_timeout`."""
    import gevent

    def one(h: Any) -> None:
        if h.connected:
            return
        if tracker:
            tracker.begin(h.name)
        try:
            with gevent.Timeout(host_timeout or None, False):
                h.connect(show_errors=False)
                if h.connected:
                    notice_dead_peer(h)
                return
            # cut short by the timeout: close the half-open client, say why
            _close_client(h)
            state.trigger_callbacks("host_connect_error", h,
                                    timeout_reason(host_timeout or 0, "to connect"))
        finally:
            if tracker:
                tracker.end(h.name, ok=True, step=False)

    for attempt in range(max(1, attempts)):
        missing = [h for h in state.inventory if not h.connected]
        if attempt > 0:
            if not missing:
                break
            delay = pause * backoff ** (attempt - 1)
            time.sleep(delay * random.uniform(0.75, 1.25))
        gevent.joinall([state.pool.spawn(one, h) for h in missing])
        for h in state.inventory:
            if h.connected and h not in state.active_hosts:
                state.failed_hosts.discard(h)
                state.activate_host(h)


def prepare_hosts(state: Any, step: Callable[..., Any], ctx: DeployContext,
                  tracker: PhaseTracker | None = None,
                  facts: FactCache | None = None) -> list[tuple[Any, Exception]]:
    """Run `step`'s deploy code for every active host, each in a greenlet of the state's pool,
    as pyinfra's CLI loads a deploy file: the code reads facts over SSH, one round trip at a
    time, so one host after the other a phase took the sum of every host's round trips (and
    grew with the number of servers). With `facts` (from `facts_read_once`), one host plans
    first and every other host reads the facts it asked for in one command before planning
    (factbatch.py). Returns the hosts whose code raised (a fact read that got no answer in time
    among them: HostTimedOut), with the error."""
    import gevent
    from pyinfra.api.deploy import add_deploy
    from pyinfra.context import ctx_state

    def one(h: Any, prefetch: bool = False) -> Exception | None:
        if tracker:
            tracker.begin(h.name)
        error: Exception | None = None
        try:
            if prefetch and facts is not None:
                try:
                    facts.prefetch(state, h)
                except HostTimedOut:
                    # the whole batch took longer than one command may (an overloaded server):
                    # read them one by one; a server that hangs fails on its first single read
                    facts.slow.add(h.name)
            add_deploy(state, step, ctx, host=h)  # (the host context is per greenlet)
        except Exception as e:  # noqa: BLE001 - reported for that host
            error = e
        finally:
            if tracker:
                tracker.end(h.name, ok=error is None)
        return error

    hosts = [h for h in state.inventory if h in state.active_hosts]  # the first scouts
    jobs: list[tuple[Any, Any]] = []
    with ctx_state.use(state):  # set here, once: a greenlet leaving must not unset it
        if facts is not None and len(hosts) > 1:
            scout, hosts = hosts[0], hosts[1:]
            with facts.scouting(scout.name):
                jobs.append((scout, state.pool.spawn(one, scout)))
                jobs[0][1].join(SCOUT_WAIT_S)  # a scout that hangs holds no one up
        jobs += [(h, state.pool.spawn(one, h, facts is not None)) for h in hosts]
        gevent.joinall([g for _, g in jobs])
    out: list[tuple[Any, Exception]] = []
    for h, g in jobs:
        e = g.value if g.successful() else g.exception
        if e is not None:
            out.append((h, e if isinstance(e, Exception) else RuntimeError(str(e))))
    return out


@contextlib.contextmanager
def facts_read_once(inventory: Any) -> Iterator[FactCache]:
    """While the deploy code runs (pyinfra's prepare stage, when nothing changes on the
    servers), a fact asked for again with the same arguments is answered from what was read
    (pyinfra 3 keeps no fact cache: base read KernelWireguard 3 times, the package list twice),
    or from the batch `FactCache.prefetch` read in one command (see factbatch.py). Each host's
    own `get_fact` is wrapped, nothing global; execution reads afresh."""
    facts = FactCache()
    for h in inventory:
        def cached(cls: Any, *args: Any, _inner: Any = h.get_fact, _h: Any = h,
                   **kwargs: Any) -> Any:
            return facts.lookup(_h, _inner, cls, args, kwargs)

        h.get_fact = cached
    try:
        yield facts
    finally:
        for h in inventory:
            vars(h).pop("get_fact", None)


def connection_lost(h: Any) -> bool:
    """Whether the host's SSH connection is gone (the server died or dropped it)."""
    client = getattr(getattr(h, "connector", None), "client", None)
    transport = client.get_transport() if client is not None else None
    return transport is None or not transport.is_active()


def _close_client(h: Any) -> None:
    client = getattr(getattr(h, "connector", None), "client", None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
        h.connector.client = None


def _close_file_transfers() -> None:
    """Close the SFTP/SCP clients pyinfra's SSH connector opened (memoized per connector, for
    every host at once): on a connection kept for the next phase an SFTP channel left open
    would count against sshd's MaxSessions (10) phase after phase."""
    from pyinfra.connectors.ssh import SSHConnector

    cache = SSHConnector.get_file_transfer_connection.cache
    for client in list(cache.values()):
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
    cache.clear()


class Connections:
    """One SSH connection per server for the whole deploy: each phase's fresh pyinfra State
    adopts the connections the earlier phases opened (pyinfra's SSH connector keeps its
    paramiko client in `connector.client`; a Host marked `connected` is not connected again),
    so a server is connected once, not once per role step. Counts the connections opened."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.opened = 0
        self.failed_attempts = 0
        self.errors: dict[str, str] = {}     # host -> its last connect error

    def error(self, name: str) -> str:
        """Why a host could not be connected, one line."""
        return one_line(f"cannot connect over SSH: {self.errors.get(name) or 'no answer'}")

    def key_problem(self, name: str) -> bool:
        """Whether the host's connect error was about its host key (unknown or changed)."""
        text = self.errors.get(name, "").lower()
        return "host key" in text or "known_hosts" in text

    def handler(self) -> Any:
        """A pyinfra state callback counting connections opened and failed attempts."""
        from pyinfra.api.state import BaseStateCallback

        pool = self

        class Counter(BaseStateCallback):
            @staticmethod
            def host_connect(state: Any, host: Any) -> None:
                pool.opened += 1
                pool.errors.pop(host.name, None)

            @staticmethod
            def host_connect_error(state: Any, host: Any, error: Any) -> None:
                pool.failed_attempts += 1
                pool.errors[host.name] = str(error)

        return Counter()

    def adopt(self, inventory: Any) -> None:
        """Give each host of a new phase its kept connection, when it is still up."""
        for h in inventory:
            client = self.clients.get(h.name)
            if client is None:
                continue
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                self.drop(h.name)
                continue
            h.connector.client = client
            h.connected = True

    def keep(self, inventory: Any, lost: set[str]) -> None:
        """After a phase: keep the connections of the hosts that did well, close the others
        (a host that failed or was cut off starts afresh if it is ever deployed again)."""
        _close_file_transfers()
        for h in inventory:
            client = getattr(h.connector, "client", None)
            if h.name in lost or not h.connected or client is None:
                _close_client(h)
                self.drop(h.name)
            else:
                self.clients[h.name] = client
            h.connected = False

    def drop(self, name: str) -> None:
        client = self.clients.pop(name, None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def close_all(self) -> None:
        for name in list(self.clients):
            self.drop(name)
