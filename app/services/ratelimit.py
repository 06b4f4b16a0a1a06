"""Fixed-window rate limits in Redis: one INCR per hit, 429 + Retry-After when over."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from freehold.app.redis_client import AnyRedis
from freehold.app.services.errors import RateLimited

if TYPE_CHECKING:
    from freehold.app.context import Ctx


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


async def write(ctx: Ctx, account_id: int, ip: str) -> None:
    """Count one write of a logged-in account, per account and per client address.

    Called at the door by every authenticated write of the API (app.api.deps.writer) and of the
    web UI (app.web.session.checked_form), not by the services, so no write escapes it."""
    s = ctx.settings
    await hit(ctx.redis, "write", account_id, s.rl_write_per_account, s.rl_write_window)
    if ip:
        await hit(ctx.redis, "write_ip", ip, s.rl_write_per_ip, s.rl_write_window)
