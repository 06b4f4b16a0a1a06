"""Waiting out a short PostgreSQL unavailability (a Patroni switchover, a restart) instead of
answering 503 at once.

`RetryingPool` wraps an asyncpg pool (Ctx.db, Ctx.replica). Its database units — a statement
(`fetch`, `fetchrow`, `fetchval`, `execute`, ...), a function run in a transaction
(`transaction`), a function that only reads on one connection (`reads`) — are run again after
a short backoff when they failed because the database was unavailable AND provably committed
nothing:
- the connection could not be had (refused, 57P03, a pool or connect timeout): nothing was sent;
- the server refused the statement itself (25006 on a demoted or read-only primary; the
  connection is then closed, so the next attempt connects again through the router);
- in a transaction, anything before COMMIT was sent (57P01/57P02, class 08, a lost connection):
  the server rolls the transaction back;
- an autocommit statement that only reads (`is_read`).
Not retried (answered 503 as before, app.unavailable): a connection lost while COMMIT or an
autocommit write was in flight — it may have committed.

A unit is its own work only: what a caller does outside PostgreSQL (Redis, media) stays outside
the function it passes, so it is never repeated. The extra wait is bounded by
`settings.db_retry_s` (FREEHOLD_DB_RETRY_S, 0: no retry) per request, counted from the request's
start (`request_started`, so the answer, 503 at worst, comes before a client's timeout): the units
of one request (one asyncio task) share one deadline, and a retry's wait for a connection ends
at it. Work outside a request (a worker's loop) counts from its first failure. Backoff 0.1 s
doubling to 0.5 s, with jitter. Each retried unit is counted in
freehold_store_retries_total{store, outcome} and logged in one line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from prometheus_client import Counter

from freehold.app.unavailable import store_of

log = logging.getLogger("freehold.app.dbretry")
T = TypeVar("T")

RETRIES = Counter("freehold_store_retries_total",
                  "units of store work that met an unavailable store and were retried or not: "
                  "recovered (retried, then succeeded), exhausted (retried until the budget "
                  "ran out: 503), unsafe (may have committed: not retried, 503)",
                  ["store", "outcome"])
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 0.5  # a primary back is found within 0.5 s (1 s made a switchover's last
# waiters miss a deadline under a client's 5 s timeout: rolling-restart drill)
# refused by the server before the statement did anything, whatever the statement
REFUSED: tuple[type[BaseException], ...] = (asyncpg.ReadOnlySQLTransactionError,
                                            asyncpg.CannotConnectNowError)
# a statement that only reads: SELECT/WITH/VALUES/TABLE/SHOW with no writing keyword anywhere
# (a data-modifying CTE, SELECT ... FOR UPDATE, a procedure call count as writes: kept from
# retrying when in doubt), nor a call of the app's own functions but the pure freehold_id_floor
# (freehold_ensure_post_partitions creates tables: app/migrations)
_READ_START = re.compile(r"\s*(?:select|with|values|table|show)\b", re.IGNORECASE)
_WRITE_WORD = re.compile(r"\b(?:insert|update|delete|merge|truncate|copy|call|do|lock|"
                         r"nextval|setval|pg_advisory\w*|freehold_(?!id_floor\b)\w+)\b",
                         re.IGNORECASE)
# the deadline of the current request's retries (an asyncio task's context: one request)
_DEADLINE: ContextVar[float | None] = ContextVar("freehold_db_retry_deadline", default=None)


def request_started(budget_s: float) -> Token[float | None]:
    """An HTTP request begins (app.api.fastpath.FeedApp, in front of every route, the Mastodon
    API's and the fast paths' too): its database retries end `budget_s` after now. Give the
    token back to `request_ended`."""
    return _DEADLINE.set(time.monotonic() + budget_s)


def request_ended(token: Token[float | None]) -> None:
    _DEADLINE.reset(token)


def is_read(sql: str) -> bool:
    """True when `sql` certainly writes nothing (conservative: a doubt says False)."""
    return bool(_READ_START.match(sql)) and not _WRITE_WORD.search(sql)


@dataclass
class Attempt:
    """How far one attempt of a unit went before it failed."""

    connected: bool = False  # a connection was had: something may have been sent
    committing: bool = False  # COMMIT was sent (or is about to be)
    sql: str | None = None  # an autocommit statement: it commits by itself unless it reads


def safe_to_retry(exc: BaseException, attempt: Attempt) -> bool:
    """Whether `exc`, met by `attempt`, means PostgreSQL was unavailable and nothing committed."""
    if store_of(exc) != "postgres":
        return False
    if not attempt.connected:
        return True  # refused, 57P03, a connect or pool timeout: nothing was sent
    if isinstance(exc, TimeoutError):
        return False  # a statement that ran past command_timeout: slow, not unavailable
    if isinstance(exc, REFUSED):
        return True
    if attempt.committing:
        return False  # lost while COMMIT was in flight: it may have committed
    return attempt.sql is None or is_read(attempt.sql)


class Episode:
    """One unit's retries: the backoff, the request's deadline, the count and the log line."""

    def __init__(self, budget_s: float, what: str) -> None:
        now = time.monotonic()
        deadline = _DEADLINE.get()
        if deadline is None or deadline < now - budget_s:  # none yet, or a past episode's
            deadline = now + budget_s  # (a long-lived task: a worker's loop)
            _DEADLINE.set(deadline)
        self.deadline = deadline
        self.what = what
        self.started = now
        self.delay = FIRST_DELAY_S
        self.retries = 0
        self.first: BaseException | None = None

    def next_delay(self, exc: BaseException) -> float | None:
        """The pause before the next attempt (jittered), or None when the budget is spent."""
        self.first = self.first or exc
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        delay = min(self.delay * random.uniform(0.5, 1.0), left)
        self.delay = min(self.delay * 2, MAX_DELAY_S)
        self.retries += 1
        return delay

    def end(self, outcome: str, exc: BaseException | None = None) -> None:
        RETRIES.labels("postgres", outcome).inc()
        first = self.first or exc
        log.warning("postgres unavailable for %.2f s in %s: %d retries, %s (%s: %s%s)",
                    time.monotonic() - self.started, self.what, self.retries, outcome,
                    type(first).__name__, first,
                    f"; last {type(exc).__name__}: {exc}" if exc is not None and exc is not first
                    else "")


Work = Callable[[asyncpg.Connection, Attempt], Awaitable[T]]


class RetryingPool:
    """An asyncpg pool whose units wait out a short unavailability (see module doc); anything
    else (`acquire`, `close`, sizes) is the pool's own."""

    def __init__(self, pool: asyncpg.Pool, retry_s: float) -> None:
        self.pool = pool
        self.retry_s = retry_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    async def _run(self, work: Work[T], what: str, sql: str | None = None) -> T:
        episode: Episode | None = None
        while True:
            attempt = Attempt(sql=sql)
            # a retry waits for a connection (a router queueing it while no primary is up, a
            # connect to a host that does not answer) only until the deadline
            wait = None if episode is None else max(0.01, episode.deadline - time.monotonic())
            try:
                async with self.pool.acquire(timeout=wait) as con:
                    attempt.connected = True
                    try:
                        result = await work(con, attempt)
                    except asyncpg.ReadOnlySQLTransactionError:
                        con.terminate()  # a demoted primary: connect again through the router
                        raise
            except Exception as exc:
                if self.retry_s <= 0 or store_of(exc) != "postgres":
                    raise
                if not safe_to_retry(exc, attempt):
                    (episode or Episode(self.retry_s, what)).end("unsafe", exc)
                    raise
                episode = episode or Episode(self.retry_s, what)
                delay = episode.next_delay(exc)
                if delay is None:
                    episode.end("exhausted", exc)
                    raise
                await asyncio.sleep(delay)
                continue
            if episode is not None:
                episode.end("recovered")
            return result

    async def _statement(self, method: str, query: str, args: tuple[Any, ...],
                         kw: dict[str, Any]) -> Any:
        async def work(con: asyncpg.Connection, attempt: Attempt) -> Any:
            return await getattr(con, method)(query, *args, **kw)
        return await self._run(work, method, sql=query)

    async def execute(self, query: str, *args: Any, **kw: Any) -> str:
        return await self._statement("execute", query, args, kw)  # type: ignore[no-any-return]

    async def executemany(self, query: str, args: Any, **kw: Any) -> None:
        await self._statement("executemany", query, (args,), kw)

    async def fetch(self, query: str, *args: Any, **kw: Any) -> list[Any]:
        return await self._statement("fetch", query, args, kw)  # type: ignore[no-any-return]

    async def fetchrow(self, query: str, *args: Any, **kw: Any) -> Any:
        return await self._statement("fetchrow", query, args, kw)

    async def fetchval(self, query: str, *args: Any, **kw: Any) -> Any:
        return await self._statement("fetchval", query, args, kw)

    async def transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]],
                          **options: Any) -> T:
        """`work(con)` in a transaction (`options`: asyncpg's isolation, readonly, deferrable),
        run again while it fails before COMMIT with the database unavailable. `work` must do
        nothing outside PostgreSQL: whatever follows the commit belongs after this call."""
        async def in_transaction(con: asyncpg.Connection, attempt: Attempt) -> T:
            async with con.transaction(**options):
                result = await work(con)
                attempt.committing = True
            return result
        return await self._run(in_transaction, getattr(work, "__qualname__", "transaction"))

    async def reads(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`work(con)`, which only reads (autocommit statements on one connection), run again
        while it fails with the database unavailable."""
        async def reading(con: asyncpg.Connection, attempt: Attempt) -> T:
            return await work(con)
        return await self._run(reading, getattr(work, "__qualname__", "reads"))
