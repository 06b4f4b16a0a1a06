"""PostgreSQL access: asyncpg pools (write + read-only replica DSN) and yoyo migrations."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from app.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def _dumps(v: object) -> str:
    return orjson.dumps(v).decode()


async def _init_conn(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads,
                              schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Connection release without asyncpg's default reset query.

    The default runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: one more round trip per query, ~10 % of the app's CPU on the home feed. The app sets
    no session state (no SET, LISTEN, advisory locks or cursors outside transactions), and an
    open transaction is still rolled back by asyncpg before this runs.
    """


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_conn,
                                     command_timeout=30, reset=_keep_session)
    assert pool is not None
    return pool


async def create_pools(settings: Settings) -> tuple[asyncpg.Pool, asyncpg.Pool]:
    """(write pool, read pool); the read pool is the write pool when no replica DSN is set."""
    write = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
    if settings.database_read_url and settings.database_read_url != settings.database_url:
        read = await create_pool(settings.database_read_url, settings.db_pool_min,
                                 settings.db_pool_max)
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
