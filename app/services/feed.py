"""The home feed: Redis lists of post ids per follower, strictly newest first, no ranking.

Write path (app/worker/fanout.py): each new post id is LPUSHX'ed onto the feed list of every
active follower whose feed is cached (LPUSHX: a missing feed stays missing), lists capped at
`feed_cap`. Accounts with `big_account_followers` or more followers are not fanned out: their
recent posts (`posts:{id}` lists) are merged in at read time. A missing feed is rebuilt from
PostgreSQL, with a sentinel `0` at its tail so that an empty feed still exists in Redis.

Read path: one pipelined Redis round trip (LRANGE of the feed page, the big-account set, its
epoch), LRANGEs of the big accounts' lists, then one hydrate query. Ids are time-ordered, so
merging and the cursor work on ids alone. Cursor: "<max_id>.<offset hint>".
"""

from __future__ import annotations

from typing import Any

from app.context import Ctx
from app.ids import parse_id
from app.redis_client import BIG_EPOCH, author_key, feed_big_key, feed_key
from app.services.errors import Forbidden, Invalid, NotFound
from app.services.posts import hydrate

SENTINEL = "0"
SLACK = 10  # extra ids read per page: entries dropped by hydrate (deleted, hidden, muted)

REBUILD_SQL = """
SELECT id FROM posts
WHERE author_id = ANY($1::bigint[]) AND NOT hidden
ORDER BY id DESC LIMIT $2
"""


def parse_cursor(cursor: str | None) -> tuple[int | None, int]:
    if not cursor:
        return None, 0
    head, _, hint = cursor.partition(".")
    max_id = parse_id(head)
    if max_id is None or (hint and not hint.isdigit()) or len(hint) > 6:
        raise Invalid("cursor: pass back the next_cursor of the previous page", field="cursor")
    return max_id, int(hint or 0)


def check_limit(ctx: Ctx, limit: int) -> int:
    if not 1 <= limit <= ctx.settings.feed_page_max:
        raise Invalid(f"limit: 1 to {ctx.settings.feed_page_max}", field="limit")
    return limit


async def feed_sources(ctx: Ctx, account_id: int) -> tuple[list[int], list[int]]:
    """(accounts fanned out to this feed, big accounts merged at read) — self included."""
    rows = await ctx.ro.fetch(
        "SELECT a.id, a.followers_count >= $2 AS big FROM accounts a WHERE a.id = $1"
        " OR a.id IN (SELECT followee_id FROM follows WHERE follower_id = $1)",
        account_id, ctx.settings.big_account_followers)
    small = [r["id"] for r in rows if not r["big"]]
    big = [r["id"] for r in rows if r["big"]]
    return small, big


async def rebuild(ctx: Ctx, account_id: int) -> int:
    """Rebuild a home feed from PostgreSQL (posts of the non-big accounts it follows + own)."""
    small, _ = await feed_sources(ctx, account_id)
    ids = [r["id"] for r in await ctx.ro.fetch(REBUILD_SQL, small, ctx.settings.feed_cap)]
    key = feed_key(account_id)
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.delete(key)
    pipe.rpush(key, *[str(i) for i in ids], SENTINEL)
    pipe.expire(key, ctx.settings.feed_ttl_days * 86400)
    await pipe.execute()
    return len(ids)


async def _big_set(ctx: Ctx, account_id: int, cached: str | None, epoch: str | None
                   ) -> list[int]:
    epoch = epoch or "0"
    if cached is not None:
        head, _, rest = cached.partition("|")
        if head == epoch:
            return [int(x) for x in rest.split(",") if x]
    _, big = await feed_sources(ctx, account_id)
    await ctx.redis.set(feed_big_key(account_id), f"{epoch}|{','.join(map(str, big))}",
                        ex=ctx.settings.feed_ttl_days * 86400)
    return big


async def rebuild_author(ctx: Ctx, author_id: int) -> list[int]:
    ids = [r["id"] for r in await ctx.ro.fetch(REBUILD_SQL, [author_id], ctx.settings.feed_cap)]
    key = author_key(author_id)
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.delete(key)
    pipe.rpush(key, *[str(i) for i in ids], SENTINEL)
    await pipe.execute()
    return ids


async def _big_ids(ctx: Ctx, big: list[int], max_id: int | None, want: int) -> list[int]:
    if not big:
        return []
    stop = want - 1 if max_id is None else ctx.settings.feed_cap  # first page: top `want`
    pipe = ctx.redis.pipeline(transaction=False)
    for aid in big:
        pipe.lrange(author_key(aid), 0, stop)
    lists = await pipe.execute()
    out: list[int] = []
    for aid, raw in zip(big, lists, strict=True):
        ids = [int(x) for x in raw] if raw else (await rebuild_author(ctx, aid))
        taken = 0
        for i in ids:
            if i and (max_id is None or i < max_id):
                out.append(i)
                taken += 1
                if taken >= want:
                    break
    return out


async def home_ids(ctx: Ctx, account_id: int, limit: int, cursor: str | None
                   ) -> tuple[list[int], str | None]:
    """Candidate post ids of one home-feed page (newest first) and the next cursor."""
    max_id, hint = parse_cursor(cursor)
    want = limit + SLACK
    key = feed_key(account_id)
    raw: list[str] = []
    for _ in range(2):  # at most one rebuild
        pipe = ctx.redis.pipeline(transaction=False)
        pipe.exists(key)
        pipe.lrange(key, hint, hint + want - 1)
        pipe.get(feed_big_key(account_id))
        pipe.get(BIG_EPOCH)
        exists, raw, big_cached, epoch = await pipe.execute()
        if exists:
            break
        await rebuild(ctx, account_id)
    # Pushes only add at the head, so ids older than max_id sit at or after the hint; entries
    # before them (pushed since the last page) are skipped, and the next range read if needed.
    own: list[tuple[int, int]] = []  # (id, position)
    pos = hint
    for _ in range(ctx.settings.feed_cap // want + 2):
        for x in raw:
            i = int(x)
            if i and (max_id is None or i < max_id):
                own.append((i, pos))
            pos += 1
        if len(own) >= want or len(raw) < want:
            break
        raw = await ctx.redis.lrange(key, pos, pos + want - 1)
    big = await _big_set(ctx, account_id, big_cached, epoch)
    merged = sorted({i for i, _ in own} | set(await _big_ids(ctx, big, max_id, limit)),
                    reverse=True)[:limit]
    if not merged:
        return [], None
    last = merged[-1]
    next_hint = max((p + 1 for i, p in own if i >= last), default=hint)
    more = len(merged) == limit
    return merged, (f"{last}.{next_hint}" if more else None)


async def home(ctx: Ctx, account_id: int, *, limit: int = 40, cursor: str | None = None
               ) -> tuple[list[dict[str, Any]], str | None]:
    ids, nxt = await home_ids(ctx, account_id, check_limit(ctx, limit), cursor)
    return await hydrate(ctx, account_id, ids), nxt


async def account_posts(ctx: Ctx, viewer_id: int, account_id: int, *, limit: int = 40,
                        cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """An account's posts and echoes, newest first; refused when either blocked the other."""
    limit = check_limit(ctx, limit)
    max_id, _ = parse_cursor(cursor)
    r = await ctx.ro.fetchrow(
        "SELECT true AS ok, EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND"
        " blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)) AS blocked"
        " FROM accounts WHERE id = $2", viewer_id, account_id)
    if r is None:
        raise NotFound("no such account")
    if r["blocked"]:
        raise Forbidden("you cannot see posts of this account: one of you blocked the other")
    ids = [x["id"] for x in await ctx.ro.fetch(
        "SELECT id FROM posts WHERE author_id = $1 AND NOT hidden"
        " AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        account_id, max_id, limit)]
    return await hydrate(ctx, viewer_id, ids), (str(ids[-1]) if len(ids) == limit else None)


async def tag_posts(ctx: Ctx, viewer_id: int, tag: str, *, limit: int = 40,
                    cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    limit = check_limit(ctx, limit)
    max_id, _ = parse_cursor(cursor)
    tag = tag.lstrip("#").lower()[:64]
    ids = [x["post_id"] for x in await ctx.ro.fetch(
        "SELECT post_id FROM post_tags WHERE tag = $1 AND ($2::bigint IS NULL OR post_id < $2)"
        " ORDER BY post_id DESC LIMIT $3", tag, max_id, limit)]
    return await hydrate(ctx, viewer_id, ids), (str(ids[-1]) if len(ids) == limit else None)


async def latest(ctx: Ctx, viewer_id: int, *, limit: int = 40, cursor: str | None = None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """The newest public posts (not replies) of the whole network."""
    limit = check_limit(ctx, limit)
    max_id, _ = parse_cursor(cursor)
    ids = [x["id"] for x in await ctx.ro.fetch(
        "SELECT id FROM posts WHERE NOT hidden AND reply_to_id IS NULL"
        " AND ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2", max_id, limit)]
    return await hydrate(ctx, viewer_id, ids), (str(ids[-1]) if len(ids) == limit else None)


async def pull_ids(ctx: Ctx, account_id: int, limit: int, max_id: int | None = None
                   ) -> list[int]:
    """The pull-on-read baseline: build the page from follows with SQL on every request."""
    return [r["id"] for r in await ctx.ro.fetch(
        "SELECT p.id FROM posts p WHERE p.author_id IN (SELECT followee_id FROM follows"
        " WHERE follower_id = $1 UNION ALL SELECT $1) AND NOT p.hidden"
        " AND ($2::bigint IS NULL OR p.id < $2) ORDER BY p.id DESC LIMIT $3",
        account_id, max_id, limit)]
