"""Which exceptions mean a store is unavailable (503) and which stay bugs (500): real
exceptions, raised by the real clients against a loopback port nobody listens on."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest
import redis.asyncio as aredis

from freehold.app.unavailable import store_of


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raised(coro: object) -> BaseException:
    async def run() -> BaseException:
        try:
            await coro  # type: ignore[misc]
        except BaseException as exc:  # noqa: BLE001 - the exception is what is tested
            return exc
        raise AssertionError("no exception")

    return asyncio.run(run())


def test_refused_connections_are_the_stores() -> None:
    port = closed_port()
    pg = raised(asyncpg.connect(f"postgresql://u:p@127.0.0.1:{port}/db", timeout=5))
    assert isinstance(pg, OSError)  # a plain OSError: counted because asyncpg raised it
    assert store_of(pg) == "postgres"
    client = aredis.Redis(port=port, socket_connect_timeout=5)
    assert store_of(raised(client.ping())) == "redis"
    asyncio.run(client.aclose())


@pytest.mark.parametrize("exc", [ValueError("bug"), KeyError("x"), AttributeError("y"),
                                 asyncpg.UniqueViolationError("dup"),
                                 asyncpg.QueryCanceledError("statement timeout"),
                                 asyncpg.InternalClientError("PoolConnectionHolder.release()"
                                                             " called on a free holder")])
def test_bugs_and_query_errors_stay_500(exc: BaseException) -> None:
    assert store_of(exc) is None


def test_a_connection_cut_mid_operation_is_postgres() -> None:
    # what asyncpg says to the next user of a pooled connection the server cut (seen when
    # PostgreSQL shut down under requests, test_unavailable)
    cut = asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in "
                                      "progress")
    assert store_of(cut) == "postgres"
    closing = asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying "
                                     "connection is closed")
    assert store_of(closing) == "postgres"
    misuse = asyncpg.InterfaceError("cannot perform operation: another operation is in "
                                    "progress")  # one connection used by two tasks: a bug
    assert store_of(misuse) is None


def test_os_and_timeout_errors_outside_the_clients_stay_500() -> None:
    with pytest.raises(OSError) as info:
        open("/nonexistent/freehold")  # noqa: SIM115
    assert store_of(info.value) is None
    assert store_of(raised(asyncio.wait_for(asyncio.sleep(1), 0.01))) is None
