"""`Ctx`: what every service function needs — the pools, Redis, settings, media store."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from freehold.app.batching import Batcher, RedisReads
from freehold.app.db import create_pools
from freehold.app.dbretry import RetryingPool
from freehold.app.readwrite import PRIMARY_READS
from freehold.app.redis_client import AnyRedis, RedisCluster, close_redis, make_redis
from freehold.app.services.media import MediaStore
from freehold.app.settings import Settings

ITEMS_MAX_AGE_S = 3600  # the feed item memory is emptied this often: row versions (32-bit
# transaction ids) come round again after ~4 billion transactions, so an entry must not
# outlive them
K = TypeVar("K")
V = TypeVar("V")


class LocalCache(Generic[K, V]):
    """A per-process map bounded in size (emptied when full) and, with `max_age_s`, in age
    (emptied whole by `expire`, which its user calls before reading it: `get` stays the dict's
    own method). It holds hints only: every entry is checked against Redis or PostgreSQL in
    the request that uses it, never taken as the truth."""

    def __init__(self, max_items: int = 100_000, max_age_s: float | None = None) -> None:
        self.max_items = max_items
        self.max_age_s = max_age_s
        self.since = time.monotonic()  # when it was last emptied
        self._d: dict[K, V] = {}
        self.get = self._d.get  # the dict's own method: no Python frame on the hot path

    def expire(self, now: float | None = None) -> None:
        """Empty it when its oldest entry may be `max_age_s` old."""
        if self.max_age_s is not None:
            now = time.monotonic() if now is None else now
            if now - self.since > self.max_age_s:
                self.clear()

    def put(self, key: K, value: V) -> None:
        if len(self._d) >= self.max_items and key not in self._d:
            self.clear()
        self._d[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def clear(self) -> None:
        self._d.clear()
        self.since = time.monotonic()

    def drop(self, key: K) -> None:
        self._d.pop(key, None)

    def __len__(self) -> int:
        return len(self._d)


@dataclass
class Ctx:
    settings: Settings
    db: RetryingPool  # primary: writes and reads that must see them
    replica: RetryingPool  # replica DSN (the primary's pool when none is set): see `ro`
    redis: AnyRedis
    media: MediaStore | None = None
    scripts: dict[str, Any] = field(default_factory=dict)  # registered Lua scripts
    inflight: dict[str, asyncio.Future[Any]] = field(default_factory=dict)  # rebuilds running
    # hints checked in the home feed's one Redis round trip: session token hash -> account,
    # account -> its cached big-account set (the `feedbig` value)
    session_hints: LocalCache[bytes, int] = field(default_factory=LocalCache)
    big_hints: LocalCache[int, tuple[str, list[int]]] = field(default_factory=LocalCache)
    # big account -> (monotonic time read, its newest post ids, the list ends there): read
    # again after settings.big_head_ttl_ms (app.services.feed)
    big_heads: LocalCache[int, tuple[float, list[int], bool]] = field(
        default_factory=lambda: LocalCache(20_000))
    # rendered JSON of what never changes in a post, and of authors (app.services.postjson)
    post_parts: LocalCache[int, tuple[bytes, bool]] = field(
        default_factory=lambda: LocalCache(200_000))
    echo_of: LocalCache[int, int] = field(default_factory=LocalCache)  # echo -> echoed post
    # rendered feed items by key: post id, row versions, upvoted (app.services.postjson);
    # emptied every ITEMS_MAX_AGE_S (row versions come round again)
    items: LocalCache[str, bytes] = field(default_factory=lambda: LocalCache(
        100_000, max_age_s=ITEMS_MAX_AGE_S))
    author_parts: LocalCache[tuple[Any, ...], bytes] = field(default_factory=LocalCache)
    # concurrent requests' reads coalesced (app.batching): Redis reads of the home feed, and
    # other batchers by name (created by their modules on first use)
    reads: RedisReads = field(init=False)
    batchers: dict[str, Batcher[Any, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reads = RedisReads(self.redis)

    @property
    def ro(self) -> RetryingPool:
        """The pool for reads that tolerate lag: the replica, but the primary for a request of
        an account that has just written (app.readwrite)."""
        return self.db if PRIMARY_READS.get() else self.replica

    @property
    def has_replica(self) -> bool:
        return self.replica is not self.db


async def open_ctx(settings: Settings) -> Ctx:
    write, read = await create_pools(settings)
    db = RetryingPool(write, settings.db_retry_s)
    ro = db if read is write else RetryingPool(read, settings.db_retry_s)
    media = MediaStore.from_settings(settings) if settings.s3_endpoint else None
    redis = make_redis(settings)
    if isinstance(redis, RedisCluster):
        # learn the slot map before the first requests, not inside them (a cold cluster client
        # hit by concurrent requests answered some of its first ones with closed connections)
        await redis.initialize()
    return Ctx(settings=settings, db=db, replica=ro, redis=redis, media=media)


async def close_ctx(ctx: Ctx) -> None:
    ctx.reads.close()
    await close_redis(ctx.redis)
    if ctx.has_replica:
        await ctx.replica.close()
    await ctx.db.close()
