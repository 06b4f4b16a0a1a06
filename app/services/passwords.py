"""Password hashing (argon2id) off the event loop, at a lower CPU priority.

Parameters: OWASP's Password Storage Cheat Sheet recommendation for argon2id (19 MiB, 2 passes,
1 lane; see PARAMETERS). argon2-cffi's defaults (RFC 9106's second choice: 64 MiB, 3 passes,
4 lanes) cost ~160 ms of CPU per check here, which made the 0.1 % of the mix that logs in ~30 %
of the app's CPU (docs/mix-costs.md). Hashes made with other parameters still verify (a hash
carries its own) and are replaced at the account's next successful log-in (needs_rehash).

Even so, run in the default thread pool, hashing threads share the app's cores equally with the
event loop, so every request in flight slows down while someone logs in: in the load-test
calibration (the app on one core), a handful of logins a step put the p99 of every endpoint
at 300-420 ms while p50 stayed ~10 ms. Here hashing has its own small pool (at most
HASH_THREADS at once: each also takes its memory_cost) whose threads run at nice HASH_NICE
(Linux keeps nice per thread; lanes argon2 starts inherit it): they take the CPU the requests
leave idle, and get ~10 % of a core the loop keeps busy, instead of half of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

HASH_THREADS = 2
HASH_NICE = 10  # above the process's: CFS weight 110 against the loop's 1024
# OWASP Password Storage Cheat Sheet (argon2id: "a minimum configuration of 19 MiB of memory,
# an iteration count of 2, and 1 degree of parallelism"): ~4x less CPU per log-in than
# argon2-cffi's default RFC_9106_LOW_MEMORY (64 MiB, t=3, p=4), still memory-hard for GPUs.
PARAMETERS = dataclasses.replace(RFC_9106_LOW_MEMORY, type=Type.ID, memory_cost=19 * 1024,
                                 time_cost=2, parallelism=1)
hasher = PasswordHasher.from_parameters(PARAMETERS)


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


def needs_rehash(phash: str) -> bool:
    """True when `phash` was made with other parameters than PARAMETERS (an older default):
    after a successful check, store hash_password's new hash in its place."""
    try:
        return hasher.check_needs_rehash(phash)
    except InvalidHashError:
        return True


_DUMMY_HASH = hasher.hash("not-a-password")
