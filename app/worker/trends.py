"""Trends worker: recompute trending tags/posts every `trends_interval_s`; once a day make sure
next months' post partitions exist."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from freehold.app.context import Ctx
from freehold.app.services import trends

log = logging.getLogger("freehold.worker")


async def ensure_partitions(ctx: Ctx) -> int:
    return int(await ctx.db.fetchval("SELECT freehold_ensure_post_partitions(1, 3)"))


async def run(ctx: Ctx, stop: asyncio.Event, max_rounds: int | None = None) -> None:
    last_maint = 0.0
    rounds = 0
    while not stop.is_set() and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        try:
            if time.monotonic() - last_maint > 86400 or last_maint == 0.0:
                made = await ensure_partitions(ctx)
                last_maint = time.monotonic()
                if made:
                    log.info("created %d post partitions", made)
            tags, posts = await trends.compute(ctx)
            log.info("trends: %d tags, %d posts", len(tags), len(posts))
        except (OSError, ConnectionError) as exc:
            log.warning("trends: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=ctx.settings.trends_interval_s)
