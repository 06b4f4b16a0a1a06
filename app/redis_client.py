"""redis-py asyncio client for a single Redis or a Redis Cluster (FREEHOLD_REDIS_CLUSTER=1).

Keys that belong to one account share a hash tag (`{<id>}`) so that a pipeline over them stays in
one cluster slot. Single Redis uses a BlockingConnectionPool: under load the plain pool raises
MaxConnectionsError, the blocking one waits for a free connection.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from freehold.app.settings import Settings

AnyRedis = Any  # Redis | RedisCluster: both expose the same command methods

STREAM_POSTS = "stream:posts"  # new posts: fan-out and pre-flagger consume it
STREAM_DELETES = "stream:deletes"  # deleted posts: the Mastodon streaming API's `delete`
STREAM_EVENTS = "stream:events"  # follow/reply/mention/echo/upvote: notify consumes it
BIG_EPOCH = "big:epoch"  # bumped when an account crosses the big-account threshold
TRENDS_TAGS = "trends:tags"
TRENDS_POSTS = "trends:posts"
FANOUT_LAG = "metrics:fanout_lag_ms"


def feed_key(account_id: int) -> str:
    return f"feed:{{{account_id}}}"


def feed_big_key(account_id: int) -> str:
    return f"feedbig:{{{account_id}}}"


def author_key(account_id: int) -> str:
    return f"posts:{{{account_id}}}"


def make_redis(settings: Settings) -> AnyRedis:
    timeouts = {"socket_connect_timeout": settings.redis_connect_timeout_s,
                "socket_timeout": settings.redis_socket_timeout_s}
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, decode_responses=True,
                                     max_connections=settings.redis_pool_max, **timeouts)
    pool = BlockingConnectionPool.from_url(settings.redis_url, decode_responses=True,
                                           max_connections=settings.redis_pool_max, timeout=10,
                                           **timeouts)
    return Redis(connection_pool=pool)


def script(r: AnyRedis, cache: dict[str, Any], name: str, source: str) -> Any:
    """A registered Lua script (EVALSHA, loaded on first NOSCRIPT), made once per client."""
    s = cache.get(name)
    if s is None:
        s = cache[name] = r.register_script(source)
    return s


async def close_redis(r: AnyRedis) -> None:
    await r.aclose()
