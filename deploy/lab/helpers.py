"""The lab's helper processes (apt cache proxy, delay line): started detached, tracked by pid."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]


def start(module: str, args: list[str], log: Path, netns: str | None = None) -> int:
    """`python -m <module> <args>` (inside `netns` when given), detached; its pid."""
    cmd = [sys.executable, "-m", module, *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    env = dict(os.environ)  # freehold.* comes from the install (setup.py maps the folders)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                close_fds=True)
    return proc.pid


def alive(pid: int | None, *markers: str) -> bool:
    """The pid runs and its command line holds every marker (not a recycled pid)."""
    if not pid:
        return False
    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        cmd = " ".join(p.cmdline())
        return p.status() != psutil.STATUS_ZOMBIE and all(m in cmd for m in markers)
    return False


def stop(pid: int | None, *markers: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; reaps it when it is our child."""
    if not alive(pid, *markers):
        return
    assert pid is not None
    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        p.terminate()
        try:
            p.wait(timeout)
        except psutil.TimeoutExpired:
            p.kill()
            p.wait(timeout)
