"""PostgreSQL access: asyncpg pools (write + read-only replica DSN) and yoyo migrations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from freehold.app.settings import Settings

if TYPE_CHECKING:
    from freehold.app.dbretry import RetryingPool

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def _dumps(v: object) -> str:
    return orjson.dumps(v).decode()


async def _init_conn(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads,
                              schema="pg_catalog")
    await conn.execute(GENERIC_PLANS)


# asyncpg prepares every query; each connection plans a statement once (a generic plan) instead
# of at every execution. PostgreSQL's `auto` mode kept choosing custom plans for the partitioned
# `posts` table (a custom plan prunes partitions when planned, so it looks cheaper), and planning
# cost more than running: a post's document 1.45 -> 0.25 ms of PostgreSQL CPU, a thread's ids
# 0.55 -> 0.15 ms (dev stack). Generic plans prune partitions when they run. A query whose plan
# depends on its parameter's value (LIKE 'prefix%' through an index) asks for a custom plan
# itself (custom_planned). Set per connection, not on the database: a
# database's settings do not travel with pg_dump or logical replication (freehold migrate).
GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"


async def custom_planned(pool: RetryingPool, work: Callable[[asyncpg.Connection], Awaitable[T]]
                         ) -> T:
    """`work(con)` on a connection whose queries are planned for their parameters' values, in a
    read-only transaction (retried when the database was unavailable, app.dbretry): `LIKE $1`
    uses a prefix index only in a plan made for the pattern (a generic plan of it reads the
    whole table)."""
    async def planned(con: asyncpg.Connection) -> T:
        await con.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return await work(con)
    return await pool.transaction(planned, readonly=True)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Connection release without asyncpg's default reset query.

    The default runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: one more round trip per query, ~10 % of the app's CPU on the home feed. The app sets
    no session state but GENERIC_PLANS, set when the connection opens (no other SET, no LISTEN,
    advisory locks or cursors outside transactions), and an open transaction is still rolled
    back by asyncpg before this runs.
    """


async def create_pool(dsn: str, min_size: int, max_size: int,
                      connect_timeout: float = 3.0) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_conn,
                                     command_timeout=30, reset=_keep_session,
                                     timeout=connect_timeout)
    assert pool is not None
    return pool


async def create_pools(settings: Settings) -> tuple[asyncpg.Pool, asyncpg.Pool]:
    """(write pool, read pool); the read pool is the write pool when no replica DSN is set."""
    write = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max,
                              settings.db_connect_timeout_s)
    if settings.database_read_url and settings.database_read_url != settings.database_url:
        read = await create_pool(settings.database_read_url, settings.db_pool_min,
                                 settings.db_pool_max, settings.db_connect_timeout_s)
    else:
        read = write
    return write, read


def yoyo_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def migrate(dsn: str) -> list[str]:
    """Apply the pending migrations; returns the ids applied (empty when up to date)."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(yoyo_dsn(dsn))
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    return [m.id for m in todo]
