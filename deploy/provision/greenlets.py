"""gevent for pyinfra's Python API: the monkey patching its CLI does itself, and a stack dump
of every greenlet on SIGUSR1 (what a run that seems stuck waits for)."""

from __future__ import annotations

import contextlib
from typing import Any

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
