"""The app's Redis clients give up on a Redis that answers nothing (a master whose server lost
power) within seconds, not the kernel's minutes; the blocking reads fit inside that bound."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from freehold.app.redis_client import close_redis, make_redis
from freehold.app.settings import Settings, SettingsError


def test_a_socket_timeout_shorter_than_a_blocking_read_is_refused() -> None:
    with pytest.raises(SettingsError, match="FREEHOLD_REDIS_SOCKET_TIMEOUT_S=1.5: must exceed"):
        Settings(development=True, redis_socket_timeout_s=1.5).check_startup()
    Settings(development=True).check_startup()


def test_a_silent_redis_fails_the_command_within_the_socket_timeout() -> None:
    """A listener that accepts and never answers, as a server cut off mid-connection looks."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]

    async def ping() -> float:
        r = make_redis(Settings(development=True, redis_url=f"redis://127.0.0.1:{port}/0",
                                redis_socket_timeout_s=2.0))
        t0 = time.monotonic()
        try:
            with pytest.raises(Exception, match="(?i)timeout"):
                await r.ping()
        finally:
            await close_redis(r)
        return time.monotonic() - t0

    try:
        took = asyncio.run(asyncio.wait_for(ping(), 60))
    finally:
        silent.close()
    assert 1.5 <= took < 10
