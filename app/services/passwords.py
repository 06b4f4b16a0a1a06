"""Password hashing (argon2id) off the event loop, at a lower CPU priority.

An argon2 hash or check costs ~0.3 s of CPU here (argon2-cffi's defaults: 64 MiB, 3 passes,
4 lanes). Run in the default thread pool, its threads share the app's cores equally with the
event loop, so every request in flight slows down while someone logs in: in the load-test
calibration (the app on one core), a handful of logins a step put the p99 of every endpoint
at 300-420 ms while p50 stayed ~10 ms. Here hashing has its own small pool (at most
HASH_THREADS at once: each also takes 64 MiB) whose threads run at nice HASH_NICE (Linux keeps
nice per thread; the lanes argon2 starts inherit it): they take the CPU the requests leave
idle, and get ~10 % of a core the loop keeps busy, instead of half of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASH_THREADS = 2
HASH_NICE = 10  # above the process's: CFS weight 110 against the loop's 1024
hasher = PasswordHasher()


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the default priority
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid,
                       min(19, os.getpriority(os.PRIO_PROCESS, tid) + HASH_NICE))


_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="password-hash",
                           initializer=_lower_priority)


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, hasher.hash, password)


def _check(phash: str | None, password: str) -> bool:
    try:
        return bool(hasher.verify(phash or _DUMMY_HASH, password)) and phash is not None
    except (VerificationError, InvalidHashError):
        return False


async def password_matches(phash: str | None, password: str) -> bool:
    """True when `password` matches `phash`; with no hash (no such account) a check of the
    same cost is still made (no probing for accounts by timing) and False returned."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _check, phash, password)


_DUMMY_HASH = hasher.hash("not-a-password")
