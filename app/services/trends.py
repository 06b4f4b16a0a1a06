"""Discover: trending hashtags and posts of the last hours, computed by the `trends` worker."""

from __future__ import annotations

import time
from typing import Any

import orjson

from freehold.app.context import Ctx
from freehold.app.ids import id_floor
from freehold.app.redis_client import TRENDS_POSTS, TRENDS_TAGS
from freehold.app.services.posts import hydrate


async def compute(ctx: Ctx, limit: int = 20) -> tuple[list[dict[str, Any]], list[int]]:
    """Trending tags (by posts using them) and posts (by upvotes, echoes, replies) since
    `trends_hours` ago; stored in Redis for the discover tab."""
    since = id_floor(int((time.time() - ctx.settings.trends_hours * 3600) * 1000))
    tag_rows = await ctx.ro.fetch(
        "SELECT t.tag, count(*) AS posts, count(DISTINCT p.author_id) AS accounts"
        " FROM post_tags t JOIN posts p ON p.id = t.post_id"
        " WHERE t.post_id >= $1 AND NOT p.hidden GROUP BY t.tag"
        " ORDER BY count(DISTINCT p.author_id) DESC, count(*) DESC, t.tag LIMIT $2",
        since, limit)
    tags = [{"tag": r["tag"], "posts": r["posts"], "accounts": r["accounts"]} for r in tag_rows]
    post_ids = [r["id"] for r in await ctx.ro.fetch(
        "SELECT id FROM posts WHERE id >= $1 AND NOT hidden AND echo_of_id IS NULL"
        " AND (upvotes_count + echoes_count + replies_count) > 0"
        " ORDER BY upvotes_count + 2 * echoes_count + replies_count DESC, id DESC LIMIT $2",
        since, limit)]
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.set(TRENDS_TAGS, orjson.dumps(tags))
    pipe.set(TRENDS_POSTS, orjson.dumps([str(i) for i in post_ids]))
    await pipe.execute()
    return tags, post_ids


async def trending_tags(ctx: Ctx) -> list[dict[str, Any]]:
    raw = await ctx.redis.get(TRENDS_TAGS)
    return list(orjson.loads(raw)) if raw else []


async def trending_posts(ctx: Ctx, viewer_id: int) -> list[dict[str, Any]]:
    raw = await ctx.redis.get(TRENDS_POSTS)
    ids = [int(i) for i in orjson.loads(raw)] if raw else []
    return await hydrate(ctx, viewer_id, ids)
