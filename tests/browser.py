"""Headless Debian Chromium for the browser tests (Playwright, executable /usr/bin/chromium).

The flags keep Chromium off the network it would otherwise call at start (this machine's closed
network refuses those connections) and make it run as root in a container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch(pw: Any, profile: Path, **options: Any) -> Any:
    """A persistent Chromium context with a fresh profile folder; close it when done."""
    ctx = pw.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        timeout=60_000, **options)
    ctx.set_default_timeout(120_000)  # generous: the CI machine may be busy
    return ctx
