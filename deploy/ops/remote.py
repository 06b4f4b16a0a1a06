"""Commands on many servers at once over SSH (Fabric), bounded in parallelism and time.

A dead server must show as down within seconds, never hang the caller: connect, banner and
auth timeouts are short, every command has a timeout, and servers are taken in batches.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from freehold.deploy.spec import Server
from freehold.deploy.ssh import HostKeyError, SSHSettings, connection

# paramiko's transport threads log a traceback for a server that never sends its banner (a
# paused one); the Outcome already says it in one line: keep the traceback off the screen
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass
class Outcome:
    server: str
    reachable: bool
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    seconds: float = 0.0


def run_one(server: Server, command: str, ssh: SSHSettings, timeout: float | None = None,
            stdin: str | None = None) -> Outcome:
    """`command` on `server` (its stdin: `stdin`, else nothing)."""
    started = time.monotonic()
    try:
        with connection(server, ssh) as conn:
            res = conn.run(command, hide=True, warn=True,
                           timeout=timeout or ssh.command_timeout,
                           in_stream=io.StringIO(stdin) if stdin is not None else False)
        return Outcome(server.name, True, res.exited, res.stdout, res.stderr,
                       seconds=time.monotonic() - started)
    except HostKeyError as e:  # refused: the whole line (server, fingerprints, fix)
        return Outcome(server.name, False, None, error=str(e),
                       seconds=time.monotonic() - started)
    except Exception as e:  # noqa: BLE001 - any failure to reach or run: that server only
        from invoke.exceptions import CommandTimedOut

        text = f"{type(e).__name__}: {e}".strip()[:300]
        return Outcome(server.name, isinstance(e, CommandTimedOut), None, error=text,
                       seconds=time.monotonic() - started)


def run_many(servers: list[Server], command_for: Callable[[Server], str | None], ssh: SSHSettings,
             timeout: float | None = None, deadline: float | None = None) -> dict[str, Outcome]:
    """`command_for(server)` on every server (None = skip it), at most `ssh.parallel` at a
    time, one connection each; one Outcome per server, in no particular order.

    `deadline` (seconds): return by then whatever happens; a server not done by then is
    unreachable, "no answer within N s" (its worker threads are daemons: a server still
    hanging never holds the caller up, its own timeouts end it)."""
    jobs = [(s, command_for(s)) for s in servers]
    jobs = [(s, c) for s, c in jobs if c]
    if not jobs:
        return {}
    todo: queue.SimpleQueue[tuple[Server, str]] = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    results: dict[str, Outcome] = {}
    lock = threading.Lock()
    finished = threading.Event()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                srv, cmd = todo.get_nowait()
            except queue.Empty:
                return
            out = run_one(srv, cmd, ssh, timeout)
            with lock:
                results[srv.name] = out
                if len(results) == len(jobs):
                    finished.set()

    started = time.monotonic()
    for _ in range(max(1, min(ssh.parallel, len(jobs)))):
        threading.Thread(target=worker, name="freehold-ssh", daemon=True).start()
    finished.wait(deadline)
    stop.set()
    with lock:
        got = dict(results)
    late = time.monotonic() - started
    for srv, _ in jobs:
        if srv.name not in got:
            got[srv.name] = Outcome(srv.name, False, error=f"no answer within {deadline:g} s",
                                    seconds=late)
    return got
