"""Which failed database units are run again (nothing can have committed) and which are not
(a loss while COMMIT or an autocommit write was in flight), and the retry loop's bound.
tests/integration/app/test_db_retry.py runs it against a real PostgreSQL made read-only and
its backends terminated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from freehold.app import dbretry
from freehold.app.dbretry import Attempt, RetryingPool, is_read, safe_to_retry
from tests.unit.app.test_unavailable import closed_port, raised

LOST = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
SHUTDOWN = asyncpg.AdminShutdownError("terminating connection due to administrator command")
READ_ONLY = asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only "
                                                "transaction")
INSERT = "INSERT INTO posts (id, body) VALUES ($1, $2)"
SELECT = "SELECT id, updated_at FROM posts WHERE id = $1"


def test_a_connection_never_had_is_retried() -> None:
    refused = raised(asyncpg.connect(f"postgresql://u:p@127.0.0.1:{closed_port()}/db",
                                     timeout=5))
    assert safe_to_retry(refused, Attempt())
    assert safe_to_retry(asyncpg.CannotConnectNowError("the database system is shutting down"),
                         Attempt())


@pytest.mark.parametrize("exc", [LOST, SHUTDOWN, asyncpg.CrashShutdownError("crash"),
                                 READ_ONLY])
def test_a_transaction_that_failed_before_commit_is_retried(exc: BaseException) -> None:
    assert safe_to_retry(exc, Attempt(connected=True))


@pytest.mark.parametrize("exc", [LOST, SHUTDOWN, asyncpg.InterfaceError(
    "cannot call Transaction.__aexit__(): the underlying connection is closed")])
def test_a_loss_during_commit_is_not_retried(exc: BaseException) -> None:
    assert not safe_to_retry(exc, Attempt(connected=True, committing=True))


def test_an_autocommit_write_lost_in_flight_is_not_retried_a_refused_one_is() -> None:
    assert not safe_to_retry(LOST, Attempt(connected=True, sql=INSERT))
    assert not safe_to_retry(SHUTDOWN, Attempt(connected=True, sql=INSERT))
    assert safe_to_retry(READ_ONLY, Attempt(connected=True, sql=INSERT))
    assert safe_to_retry(LOST, Attempt(connected=True, sql=SELECT))


def test_slow_statements_and_bugs_are_not_retried() -> None:
    slow = raised(asyncio.wait_for(asyncio.sleep(1), 0.01))
    assert not safe_to_retry(slow, Attempt(connected=True, sql=SELECT))
    for exc in (asyncpg.UniqueViolationError("dup"), ValueError("bug")):
        assert not safe_to_retry(exc, Attempt())
        assert not safe_to_retry(exc, Attempt(connected=True))


@pytest.mark.parametrize("sql,reads", [
    (SELECT, True), ("  with t AS (SELECT 1) SELECT * FROM t", True), ("SHOW server_version", True),
    (INSERT, False), ("UPDATE accounts SET bio = $2 WHERE id = $1", False),
    ("WITH d AS (DELETE FROM mutes RETURNING *) SELECT count(*) FROM d", False),
    ("SELECT id FROM posts WHERE id = $1 FOR UPDATE", False),
    ("SELECT nextval('ids')", False), ("SELECT pg_advisory_lock(1)", False),
    ("SELECT freehold_ensure_post_partitions(1, 3)", False),
    ("SELECT id FROM posts WHERE id >= freehold_id_floor($1)", True),
])
def test_is_read_says_true_only_for_certain_reads(sql: str, reads: bool) -> None:
    assert is_read(sql) is reads


class FakeConnection:
    """A connection whose transaction fails as told: in its body (`work` raises) or at COMMIT."""

    def __init__(self, commit_error: BaseException | None) -> None:
        self.commit_error = commit_error
        self.terminated = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield
        if self.commit_error is not None:
            raise self.commit_error

    def terminate(self) -> None:
        self.terminated = True


class FakePool:
    def __init__(self, commit_error: BaseException | None = None) -> None:
        self.commit_error = commit_error
        self.handed: list[FakeConnection] = []

    @asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[FakeConnection]:
        con = FakeConnection(self.commit_error)
        self.handed.append(con)
        yield con


def retried(outcome: str) -> float:
    return dbretry.RETRIES.labels("postgres", outcome)._value.get()  # type: ignore[no-any-return]


def test_the_loop_retries_before_commit_until_it_succeeds() -> None:
    pool, calls = FakePool(), []

    async def work(con: Any) -> str:
        calls.append(con)
        if len(calls) < 3:
            raise READ_ONLY if len(calls) == 1 else SHUTDOWN
        return "done"

    before = retried("recovered")
    assert asyncio.run(RetryingPool(pool, 5.0).transaction(work)) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3 and retried("recovered") == before + 1
    assert pool.handed[0].terminated and not pool.handed[1].terminated  # 25006: reconnect


def test_the_loop_does_not_retry_a_commit_lost_in_flight() -> None:
    pool, calls = FakePool(commit_error=LOST), []

    async def work(con: Any) -> None:
        calls.append(con)

    before = retried("unsafe")
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        asyncio.run(RetryingPool(pool, 5.0).transaction(work))  # type: ignore[arg-type]
    assert len(calls) == 1 and retried("unsafe") == before + 1


@pytest.mark.parametrize("budget", [0.0, 0.6])
def test_the_extra_wait_is_bounded(budget: float) -> None:
    calls = []

    async def work(con: Any) -> None:
        calls.append(con)
        raise SHUTDOWN

    start = time.monotonic()
    with pytest.raises(asyncpg.AdminShutdownError):
        asyncio.run(RetryingPool(FakePool(), budget).transaction(work))  # type: ignore[arg-type]
    waited = time.monotonic() - start
    assert waited <= budget + 0.5  # the last pause ends at the deadline
    # 0: no retry at all; 0.6 s: pauses of 0.05-0.1, 0.1-0.2, 0.2-0.4 s ... fit 3 to 6 times
    assert len(calls) == 1 if budget == 0 else 3 <= len(calls) <= 7


class QueueingPool(FakePool):
    """The first connection is had and its work fails (the primary went away); every later
    one waits, as behind a router with no primary, until asyncpg's `timeout` or forever."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    @asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[FakeConnection]:
        self.timeouts.append(timeout)
        if len(self.timeouts) > 1:
            await asyncio.wait_for(asyncio.sleep(3600), timeout)
        yield FakeConnection(None)


def test_a_requests_retries_end_at_its_deadline_counted_from_its_start() -> None:
    """A request 0.3 s old when its unit fails has 0.2 s of a 0.5 s budget left; a retry's
    wait for a connection (a router queueing it) ends at that deadline, not at a connect
    timeout past the client's patience."""
    pool = QueueingPool()

    async def work(con: Any) -> None:
        raise SHUTDOWN

    async def request() -> float:
        token = dbretry.request_started(0.5)
        try:
            await asyncio.sleep(0.3)  # the request's own work before the database failed
            start = time.monotonic()
            with pytest.raises((asyncpg.AdminShutdownError, TimeoutError)):
                await RetryingPool(pool, 0.5).transaction(work)  # type: ignore[arg-type]
            return time.monotonic() - start
        finally:
            dbretry.request_ended(token)

    waited = asyncio.run(asyncio.wait_for(request(), 10))
    assert waited < 0.45, f"retried {waited:.2f} s past a deadline 0.2 s away"
    assert pool.timeouts[0] is None  # a first attempt waits as the pool always did
    assert all(t is not None and t <= 0.21 for t in pool.timeouts[1:])


def test_outside_a_request_the_budget_counts_from_the_first_failure() -> None:
    calls = []

    async def work(con: Any) -> None:
        calls.append(con)
        raise SHUTDOWN

    async def worker() -> None:
        await asyncio.sleep(0.3)  # no request deadline: a worker's loop
        with pytest.raises(asyncpg.AdminShutdownError):
            await RetryingPool(FakePool(), 0.5).transaction(work)  # type: ignore[arg-type]

    asyncio.run(worker())
    assert len(calls) >= 3  # the whole 0.5 s of retries, not what was left of it
