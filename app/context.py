"""`Ctx`: what every service function needs — the pools, Redis, settings, media store."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from app.db import create_pools
from app.redis_client import AnyRedis, close_redis, make_redis
from app.services.media import MediaStore
from app.settings import Settings


@dataclass
class Ctx:
    settings: Settings
    db: asyncpg.Pool  # primary: writes and reads that must see them
    ro: asyncpg.Pool  # replica DSN: reads that tolerate lag
    redis: AnyRedis
    media: MediaStore | None = None
    scripts: dict[str, object] = field(default_factory=dict)


async def open_ctx(settings: Settings) -> Ctx:
    db, ro = await create_pools(settings)
    media = MediaStore.from_settings(settings) if settings.s3_endpoint else None
    return Ctx(settings=settings, db=db, ro=ro, redis=make_redis(settings), media=media)


async def close_ctx(ctx: Ctx) -> None:
    await close_redis(ctx.redis)
    if ctx.ro is not ctx.db:
        await ctx.ro.close()
    await ctx.db.close()
