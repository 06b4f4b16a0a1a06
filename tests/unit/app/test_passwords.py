"""app.services.passwords: argon2 off the event loop, in low-priority threads."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from freehold.app.services import passwords

pytestmark = pytest.mark.unit


def test_hash_and_check() -> None:
    async def main() -> tuple[bool, bool, bool]:
        h = await passwords.hash_password("correct horse")
        assert h.startswith("$argon2id$")
        return (await passwords.password_matches(h, "correct horse"),
                await passwords.password_matches(h, "wrong horse"),
                await passwords.password_matches(None, "not-a-password"))  # no account

    assert asyncio.run(main()) == (True, False, False)


def test_owasp_parameters_and_rehash_of_older_hashes() -> None:
    from argon2 import PasswordHasher
    from argon2.profiles import RFC_9106_LOW_MEMORY

    h = passwords.hasher.hash("correct horse")
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")  # OWASP: 19 MiB, t=2, p=1
    assert not passwords.needs_rehash(h)
    old = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY).hash("correct horse")
    assert passwords.needs_rehash(old)
    assert asyncio.run(passwords.password_matches(old, "correct horse"))  # still verifies
    assert passwords.needs_rehash("not a hash")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_hashing_threads_run_at_a_lower_priority() -> None:
    def nice_here() -> tuple[int, str]:
        return (os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                threading.current_thread().name)

    nice, name = passwords._pool.submit(nice_here).result(timeout=30)
    assert name.startswith("password-hash")
    assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + passwords.HASH_NICE)
