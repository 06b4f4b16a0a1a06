"""Bounded polling shared by the test modules (lab and integration)."""

from __future__ import annotations

import time
from typing import Any


def wait_for(what: str, check: Any, timeout: float, every: float = 1.0) -> Any:
    """`check()` until it returns something truthy (returned), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
