"""Fixed-window rate limits in Redis: one INCR per hit, 429 + Retry-After when over."""

from __future__ import annotations

import time

from app.redis_client import AnyRedis
from app.services.errors import RateLimited


async def hit(redis: AnyRedis, scope: str, key: str | int, limit: int, window: int) -> None:
    """Count one action of `key` in `scope`; raise RateLimited past `limit` per `window` s."""
    if limit <= 0:
        return
    now = time.time()
    slot = int(now // window)
    rkey = f"rl:{scope}:{key}:{slot}"
    pipe = redis.pipeline(transaction=False)
    pipe.incr(rkey)
    pipe.expire(rkey, window + 1, nx=True)
    count, _ = await pipe.execute()
    if int(count) > limit:
        retry = int((slot + 1) * window - now) + 1
        raise RateLimited(f"too many {scope.replace('_', ' ')} requests: retry in {retry} s",
                          retry_after=retry)
