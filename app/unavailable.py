"""Which exceptions mean "PostgreSQL or Redis is unavailable for a moment", and the 503 they
are answered with.

A primary that dies, fails over or restarts, a Redis node that is down, loading or demoted,
a pool that cannot get a connection in time: the request did nothing wrong and will work
again in seconds, so it is answered 503 with Retry-After (as an `Unavailable` service error:
the API's JSON error shape, or the web UI's error page), counted in
`freehold_store_unavailable_total` and logged in one line. Anything else, a bug included,
stays a 500 with its traceback.

Generic classes (OSError, TimeoutError) count only when raised inside a store client (a frame
of asyncpg, redis-py or app.redis_wire on their way): a refused connection or a pool acquire
that timed out, not a timeout or socket error elsewhere in the app. asyncpg's
InternalClientError and InterfaceError count only for a connection cut mid-operation
(LOST_PROTOCOL, CLOSED_CONNECTION), not for a misuse of a connection by the app.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import asyncpg
from prometheus_client import Counter
from redis import exceptions as rx
from starlette.requests import Request
from starlette.responses import Response

from freehold.app.redis_wire import Redirected
from freehold.app.services.errors import ServiceError, Unavailable

log = logging.getLogger("freehold.app.unavailable")

RETRY_AFTER_S = 5  # a Patroni failover or a Redis replica promotion takes a few seconds

POSTGRES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: lost, refused, rejected connections
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,  # 57P01: fast shutdown, pg_terminate_backend, failover
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.ReadOnlySQLTransactionError,  # 25006: writing to a demoted primary after failover
)
REDIS: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # with BusyLoadingError, MaxConnectionsError, MaxClientsReachedError
    rx.TimeoutError,
    rx.ReadOnlyError,  # a demoted master
    rx.ClusterDownError,  # with MasterDownError
    rx.TryAgainError,  # a slot being moved
    rx.SlotNotCoveredError,
    rx.RedisClusterUnreachableError,
    Redirected,  # app.redis_wire: a cluster node redirected (its users fall back to redis-py)
)
GENERIC: tuple[type[BaseException], ...] = (OSError, TimeoutError)
# a pooled connection the server cut in the middle of an operation: asyncpg's protocol still
# waits for an answer that never comes, and the connection's next user is told so by these
# messages (the pool drops the connection once the socket's loss is noticed)
LOST_PROTOCOL = ("cannot switch to state", "not connected")
# ...and what the end of a transaction on a connection the server cut says (InterfaceError)
CLOSED_CONNECTION = "connection is closed"
STORE_ERRORS = POSTGRES + REDIS + GENERIC + (asyncpg.InternalClientError,
                                             asyncpg.InterfaceError)  # handled here
CLIENT_MODULES = {"postgres": ("asyncpg", "freehold.app.db"),
                  "redis": ("redis", "freehold.app.redis_wire")}

UNAVAILABLE = Counter("freehold_store_unavailable_total",
                      "requests answered 503: PostgreSQL or Redis unavailable",
                      ["store", "exception"])


def _raised_in(tb: TracebackType | None) -> str | None:
    """The store whose client code the traceback passes through, if any."""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        for store, names in CLIENT_MODULES.items():
            if any(module == n or module.startswith(n + ".") for n in names):
                return store
        tb = tb.tb_next
    return None


def store_of(exc: BaseException) -> str | None:
    """"postgres" or "redis" when `exc` means that store is unavailable, else None."""
    if isinstance(exc, POSTGRES):
        return "postgres"
    if isinstance(exc, REDIS):
        return "redis"
    if isinstance(exc, GENERIC):
        return _raised_in(exc.__traceback__)
    if isinstance(exc, asyncpg.InternalClientError) and str(exc).startswith(LOST_PROTOCOL) or \
            isinstance(exc, asyncpg.InterfaceError) and CLOSED_CONNECTION in str(exc):
        return "postgres"
    return None


def unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 service error for a store's unavailability (counted and logged), else None."""
    store = store_of(exc)
    if store is None:
        return None
    name = type(exc).__name__
    UNAVAILABLE.labels(store, name).inc()
    log.warning("%s unavailable: %s: %s", store, name, exc)
    what = "the database" if store == "postgres" else "the cache"
    return Unavailable(f"{what} is unavailable for a moment: try again shortly",
                       retry_after=RETRY_AFTER_S)


async def handle(request: Request, exc: Exception) -> Response:
    """Exception handler for STORE_ERRORS: a 503 answered by the app's ServiceError handler
    (JSON for the API, a page for the web UI); any other exception is raised again (500)."""
    err = unavailable(exc)
    if err is None:
        raise exc
    handler: Any = request.app.exception_handlers[ServiceError]
    return await handler(request, err)  # type: ignore[no-any-return]


def install(app: Any) -> None:
    for cls in STORE_ERRORS:
        app.add_exception_handler(cls, handle)
