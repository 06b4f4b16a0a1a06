"""Commands on many servers at once over SSH (Fabric), bounded in parallelism and time.

A dead server must show as down within seconds, never hang the caller: connect, banner and
auth timeouts are short, every command has a timeout, and servers are taken in batches.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.spec import ClusterSpec, Server


@dataclass
class SSH:
    key: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 3.0
    command_timeout: float = 15.0
    parallel: int = 32


@dataclass
class Outcome:
    server: str
    reachable: bool
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    seconds: float = 0.0


def ssh_for(spec_path: Path, spec: ClusterSpec, key: Path | None = None,
            known_hosts: Path | None = None) -> SSH:
    """The given key/known_hosts; for a lab spec whose lab exists, the lab's own."""
    k = str(key) if key else None
    kh = str(known_hosts) if known_hosts else None
    if spec.lab is not None and (k is None or kh is None):
        try:
            from deploy.lab import Lab

            lab = Lab.from_spec(spec_path)
            if lab.ssh_key_path.exists():
                k = k or str(lab.ssh_key_path)
                kh = kh or str(lab.known_hosts_path)
        except Exception:  # noqa: BLE001 - no lab state: the spec's own SSH settings
            pass
    return SSH(key=k, known_hosts=kh)


def connection(server: Server, ssh: SSH) -> Any:
    from fabric import Connection
    from paramiko import RejectPolicy

    kwargs: dict[str, Any] = {"look_for_keys": ssh.key is None, "allow_agent": ssh.key is None,
                              "banner_timeout": ssh.connect_timeout,
                              "auth_timeout": ssh.connect_timeout}
    if ssh.key:
        kwargs["key_filename"] = ssh.key
    conn = Connection(server.public_address, user=server.ssh_user, port=server.ssh_port,
                      connect_timeout=ssh.connect_timeout, connect_kwargs=kwargs)
    if ssh.known_hosts:
        conn.client.load_host_keys(ssh.known_hosts)
        conn.client.set_missing_host_key_policy(RejectPolicy())
    return conn


def run_one(server: Server, command: str, ssh: SSH, timeout: float | None = None,
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
    except Exception as e:  # noqa: BLE001 - any failure to reach or run: that server only
        from invoke.exceptions import CommandTimedOut

        text = f"{type(e).__name__}: {e}".strip()[:300]
        return Outcome(server.name, isinstance(e, CommandTimedOut), None, error=text,
                       seconds=time.monotonic() - started)


def run_many(servers: list[Server], command_for: Callable[[Server], str | None], ssh: SSH,
             timeout: float | None = None) -> dict[str, Outcome]:
    """`command_for(server)` on every server (None = skip it), at most `ssh.parallel` at a
    time; one Outcome per server, in no particular order."""
    jobs = [(s, command_for(s)) for s in servers]
    jobs = [(s, c) for s, c in jobs if c]
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(ssh.parallel, len(jobs)))) as pool:
        futures = {s.name: pool.submit(run_one, s, c, ssh, timeout) for s, c in jobs}
        return {name: f.result() for name, f in futures.items()}
