"""The home feed: Redis lists of post ids per follower, strictly newest first, no ranking.

Write path (app/worker/fanout.py): each new post id is LPUSHX'ed onto the feed list of every
active follower whose feed is cached (LPUSHX: a missing feed stays missing), lists capped at
`feed_cap`. Accounts with `big_account_followers` or more followers are not fanned out: their
recent posts (`posts:{id}` lists) are merged in at read time. A missing feed is rebuilt from
PostgreSQL, with a sentinel `0` at its tail so that an empty feed still exists in Redis.

Read path: one pipelined Redis round trip (the session check, LRANGE of the feed page, the
big-account set and its epoch, and the heads of the big accounts' lists this process does not
hold fresh), then the page's items (app.services.postjson: one query for their keys, a second
only for items this process does not hold); concurrent requests share both (app.batching: one
pipeline and one set of queries for all the requests in flight). Each process keeps the newest
BIG_HEAD ids of the big accounts its readers follow for `big_head_ttl_ms` (its own posts drop
them at once), so a read merges them from memory; a list is read deeper only when its ids
could still make the page. Ids are time-ordered, so merging and the cursor work on ids alone.
Cursor: "<max_id>.<offset hint>". The page is rendered to JSON by app.services.postjson.
Concurrent rebuilds of the same list run once per process.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable
from heapq import heapify, heappop, heapreplace
from typing import Any

from freehold.app.batching import Command
from freehold.app.context import Ctx
from freehold.app.ids import MAX_ID, parse_id
from freehold.app.redis_client import BIG_EPOCH, author_key, feed_big_key, feed_key, script
from freehold.app.services.errors import Forbidden, Invalid, NotFound
from freehold.app.services.postjson import hydrate_json, page_json
from freehold.app.services.posts import check_limit, hydrate

SENTINEL = "0"
CURSOR_PATTERN = r"[0-9]{1,19}(\.[0-9]{1,6})?"  # next_cursor: "<max_id>.<offset hint>"
SLACK = 10  # extra ids read per page: entries dropped by hydrate (deleted, hidden, muted)
BIG_HEAD = 64  # newest ids of a big account's list kept per process (a first page's worth)

SOURCES_SQL = """
SELECT a.id, a.followers_count >= $2 AS big FROM accounts a
WHERE a.id IN (SELECT followee_id FROM follows WHERE follower_id = $1 UNION ALL SELECT $1)
"""

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


async def feed_sources(ctx: Ctx, account_id: int) -> tuple[list[int], list[int]]:
    """(accounts fanned out to this feed, big accounts merged at read) — self included.
    From the primary, as every read here whose result is cached for days: a lagging replica
    would leave out a follow just made, or a post just fanned out, until the cache expires."""
    rows = await ctx.db.fetch(SOURCES_SQL, account_id, ctx.settings.big_account_followers)
    small = [r["id"] for r in rows if not r["big"]]
    big = [r["id"] for r in rows if r["big"]]
    return small, big


async def _once(ctx: Ctx, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
    """Run `make` once for concurrent callers with the same key (a rebuild wanted by many
    requests at once runs once; the others wait for it)."""
    fut = ctx.inflight.get(key)
    if fut is not None:
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if not fut.cancelled():
                raise  # this caller was cancelled
            return await make()  # the caller that ran it was cancelled: run it here
    fut = asyncio.get_running_loop().create_future()
    ctx.inflight[key] = fut
    try:
        res = await make()
    except asyncio.CancelledError:
        fut.cancel()
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut.exception()  # retrieved: no "never retrieved" warning when nobody waits
        raise
    else:
        fut.set_result(res)
        return res
    finally:
        del ctx.inflight[key]


# KEYS[1] becomes ARGV[2..] (ids, then the sentinel) and expires in ARGV[1] seconds, at once:
# one key, so one slot on a Redis Cluster too (redis-py's cluster MULTI runs each queued
# command in a thread of its own, blocking the event loop, and breaks on a node whose
# connection that thread's loop opened).
REPLACE_LUA = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 1000 do  -- unpack takes a few thousand values at most
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


async def _replace_list(ctx: Ctx, key: str, ids: list[int]) -> None:
    run = script(ctx.redis, ctx.scripts, "replace_list", REPLACE_LUA)
    await run(keys=[key], args=[ctx.settings.feed_ttl_days * 86400, *map(str, ids), SENTINEL])


async def rebuild(ctx: Ctx, account_id: int) -> int:
    """Rebuild a home feed from PostgreSQL (posts of the non-big accounts it follows + own)."""
    async def make() -> int:
        small, _ = await feed_sources(ctx, account_id)
        ids = [r["id"] for r in await ctx.db.fetch(REBUILD_SQL, small, ctx.settings.feed_cap)]
        await _replace_list(ctx, feed_key(account_id), ids)
        return len(ids)

    return int(await _once(ctx, feed_key(account_id), make))


async def _big_set(ctx: Ctx, account_id: int, cached: str | None, epoch: str | None,
                   known: tuple[str, list[int]] | None = None) -> tuple[str, list[int]]:
    """(the `feedbig` value, the big accounts this feed merges at read time): the cached value
    when it was made at the current epoch (parsed again only when it differs from `known`,
    this process's hint), else recomputed from PostgreSQL and cached."""
    epoch = epoch or "0"
    if cached is not None:
        head, _, rest = cached.partition("|")
        if head == epoch:
            if known is not None and known[0] == cached:
                return known
            return cached, [int(x) for x in rest.split(",") if x]
    _, big = await feed_sources(ctx, account_id)
    raw = f"{epoch}|{','.join(map(str, big))}"
    await ctx.redis.set(feed_big_key(account_id), raw, ex=ctx.settings.feed_ttl_days * 86400)
    return raw, big


async def rebuild_author(ctx: Ctx, author_id: int) -> list[int]:
    """Rebuild an author's recent-post list from PostgreSQL (expires after `feed_ttl_days`:
    an account that is no longer big stops being read, and its list goes away)."""
    async def make() -> list[int]:
        ids = [r["id"] for r in await ctx.db.fetch(REBUILD_SQL, [author_id],
                                                     ctx.settings.feed_cap)]
        await _replace_list(ctx, author_key(author_id), ids)
        return ids

    return list(await _once(ctx, author_key(author_id), make))


def _take(raw: list[str], off: int, size: int, cap: int, max_id: int | None, got: list[int]
          ) -> tuple[bool, int]:
    """Collect the ids below `max_id` of one read of a big account's list into `got`; returns
    (more entries follow, the last id read)."""
    last = 0
    for x in raw:
        i = int(x)
        if not i:
            return False, last  # the sentinel: the list ends here
        last = i
        if max_id is None or i < max_id:
            got.append(i)
    return len(raw) == size and off + size < cap, last


def _head(raw: list[str]) -> tuple[list[int], bool]:
    """(ids, the list ends there) of an LRANGE 0..BIG_HEAD-1 of a big account's list."""
    ids = []
    for x in raw:
        i = int(x)
        if not i:
            return sorted(ids, reverse=True), True  # the sentinel
        ids.append(i)
    return sorted(ids, reverse=True), len(raw) < BIG_HEAD


def _stale_heads(ctx: Ctx, big: list[int]) -> tuple[dict[int, tuple[list[int], bool]],
                                                     list[int]]:
    """(the heads this process holds fresh, the big accounts whose heads must be read)."""
    ttl = ctx.settings.big_head_ttl_ms / 1000
    now = time.monotonic()
    fresh: dict[int, tuple[list[int], bool]] = {}
    stale: list[int] = []
    for a in big:
        h = ctx.big_heads.get(a)
        if h is not None and now - h[0] < ttl:
            fresh[a] = (h[1], h[2])
        else:
            stale.append(a)
    return fresh, stale


async def _keep_heads(ctx: Ctx, authors: list[int], answers: list[Any],
                      heads: dict[int, tuple[list[int], bool]], sent: float) -> None:
    """Parse the LRANGE answers (read at `sent` or later) of `authors`' heads into `heads` and
    this process's cache; missing lists are rebuilt from PostgreSQL. A head another request
    parsed since `sent` is taken as it is (concurrent requests share the read, app.batching)."""
    now = time.monotonic()
    missing = [a for a, raw in zip(authors, answers, strict=True) if not raw]
    rebuilt = await asyncio.gather(*(rebuild_author(ctx, a) for a in missing))
    for a, ids in zip(missing, rebuilt, strict=True):
        heads[a] = (ids[:BIG_HEAD], len(ids) <= BIG_HEAD)
    for a, raw in zip(authors, answers, strict=True):
        if raw:
            kept = ctx.big_heads.get(a)
            if kept is not None and kept[0] >= sent:
                heads[a] = (kept[1], kept[2])
            else:
                heads[a] = _head(raw)
    for a in authors:
        ctx.big_heads.put(a, (now, *heads[a]))


async def _read_heads(ctx: Ctx, authors: list[int],
                      heads: dict[int, tuple[list[int], bool]]) -> None:
    if authors:
        sent = time.monotonic()
        answers = await ctx.reads([("lrange", author_key(a), 0, BIG_HEAD - 1) for a in authors])
        await _keep_heads(ctx, authors, answers, heads, sent)


def _newest(lists: list[list[int]], limit: int) -> list[int]:
    """The `limit` largest distinct ids of newest-first lists: a heap of the lists' next ids
    (negated: heapq's heap is a min-heap), run with heapq's C functions; heapq.merge's
    generators cost ~1.3x as much for a page (measured on 200 real pages)."""
    heap = [(-ids[0], k, 0) for k, ids in enumerate(lists) if ids]
    heapify(heap)
    page: list[int] = []
    prev = 0
    while heap:
        i, k, at = heap[0]
        if i != prev:
            page.append(-i)
            prev = i
            if len(page) == limit:
                break
        ids = lists[k]
        if at + 1 < len(ids):
            heapreplace(heap, (-ids[at + 1], k, at + 1))
        else:
            heappop(heap)
    return page


async def _merge_page(ctx: Ctx, big: list[int], heads: dict[int, tuple[list[int], bool]],
                      max_id: int | None, limit: int, own: list[int]) -> list[int]:
    """The page: the `limit` newest distinct ids below `max_id` of the feed's own entries
    (`own`, newest first) and the big accounts' lists.

    The lists are merged from the heads (BIG_HEAD newest ids) this process holds; a list is
    newest first, so it is read deeper in Redis only when it goes on past its head and the
    head's last id is newer than the page's oldest (what follows could still make the page)."""
    own = sorted(set(own), reverse=True)  # (a post pushed twice, by a redelivered fan-out)
    floor = own[limit - 1] if len(own) >= limit else 0  # the page's oldest is at least this
    lists = [own]
    for a in big:
        ids = heads[a][0]
        if ids and ids[0] > floor:  # else nothing of it can make the page
            lists.append(ids if max_id is None else [i for i in ids if i < max_id])
    page = _newest(lists, limit)
    floor = page[-1] if len(page) == limit else 0
    deeper = {a: len(heads[a][0]) for a in big
              if not heads[a][1] and heads[a][0] and heads[a][0][-1] > floor}
    if not deeper:
        return page
    got: list[int] = []
    await _read_deeper(ctx, deeper, max_id, limit, set(page), got)
    return sorted(set(page).union(got), reverse=True)[:limit]


async def _read_deeper(ctx: Ctx, todo: dict[int, int], max_id: int | None, limit: int,
                       known: set[int], got: list[int]) -> None:
    """Read big accounts' lists past their heads (offsets in `todo`) into `got`, a read 4×
    deeper each round, only the lists whose last id read can still make the page."""
    size = BIG_HEAD * 4
    for _ in range(12):  # bounded: the read size grows 4× a round, up to the list cap
        pipe = ctx.redis.pipeline(transaction=False)
        for a, off in todo.items():
            pipe.lrange(author_key(a), off, off + size - 1)
        answers = await pipe.execute()
        deeper: dict[int, tuple[int, int]] = {}  # account -> (next offset, last id read)
        n0 = len(got)
        for (a, off), raw in zip(todo.items(), answers, strict=True):
            more, last = _take(raw, off, size, ctx.settings.feed_cap, max_id, got)
            if more:
                deeper[a] = (off + size, last)
        known.update(got[n0:])
        floor = heapq.nlargest(limit, known)[-1] if len(known) >= limit else 0
        todo = {a: off for a, (off, last) in deeper.items() if last > floor}
        if not todo:
            return
        size = min(size * 4, ctx.settings.feed_cap)


class SessionChanged(Exception):
    """The session checked in the feed's round trip no longer maps to the hinted account."""


async def home_ids(ctx: Ctx, account_id: int, limit: int, cursor: str | None, *,
                   session_key: str | None = None) -> tuple[list[int], str | None]:
    """Candidate post ids of one home-feed page (newest first) and the next cursor.

    One pipelined round trip reads the feed page, the big-account set and its epoch and — when
    this process already knows the set — the heads of the big accounts' lists it does not hold
    fresh; with `session_key` it also checks that the session still belongs to `account_id`
    (SessionChanged otherwise)."""
    max_id, hint = parse_cursor(cursor)
    want = limit + SLACK
    key = feed_key(account_id)
    guess = ctx.big_hints.get(account_id)
    heads: dict[int, tuple[list[int], bool]] = {}
    stale: list[int] = []
    if guess is not None:
        heads, stale = _stale_heads(ctx, guess[1])
    raw: list[str] = []
    for attempt in range(2):  # at most one rebuild
        cmds: list[Command] = []
        if session_key is not None:
            cmds.append(("get", session_key))
        if hint or attempt:
            cmds.append(("exists", key))
        cmds += [("lrange", key, hint, hint + want - 1), ("get", feed_big_key(account_id)),
                 ("get", BIG_EPOCH)]
        cmds += [("lrange", author_key(a), 0, BIG_HEAD - 1) for a in stale]
        sent = time.monotonic()
        res = await ctx.reads(cmds)  # one pipeline with concurrent requests' reads
        if session_key is not None:
            if res[0] != str(account_id):
                raise SessionChanged(session_key)
            res = res[1:]
        exists = res.pop(0) if hint or attempt else True
        raw, big_cached, epoch = res[:3]
        if stale:
            await _keep_heads(ctx, stale, res[3:], heads, sent)
            stale = []
        if exists and (raw or hint):  # a cached feed is never empty: it ends in the sentinel
            break
        await rebuild(ctx, account_id)
    # Pushes only add at the head, so ids older than max_id sit at or after the hint; entries
    # before them (pushed since the last page) are skipped, and the next range read if needed.
    own: list[int] = []  # ids, and their positions in the list
    at: list[int] = []
    pos = hint
    for _ in range(ctx.settings.feed_cap // want + 2):
        got = list(map(int, raw))
        if max_id is None and 0 not in got:  # a first page without the sentinel: all of it
            own += got
            at += range(pos, pos + len(got))
        else:
            for k, i in enumerate(got, pos):
                if i and (max_id is None or i < max_id):
                    own.append(i)
                    at.append(k)
        pos += len(got)
        if len(own) >= want or len(raw) < want:
            break
        raw = await ctx.redis.lrange(key, pos, pos + want - 1)
    big_raw, big = await _big_set(ctx, account_id, big_cached, epoch, guess)
    if guess is None or guess[0] != big_raw:
        ctx.big_hints.put(account_id, (big_raw, big))
        fresh, stale = _stale_heads(ctx, big)
        heads.update(fresh)
        await _read_heads(ctx, stale, heads)
    merged = await _merge_page(ctx, big, heads, max_id, limit, own)
    if not merged:
        return [], None
    last = merged[-1]
    # The next page reads on from the first entry this one read but did not return (an id
    # older than its last). Entries are mostly newest first, but not always: a fan-out redone
    # after a worker died mid-batch, or two workers pushing at once, puts an older id above
    # newer ones; reading on after the page's last entry skipped it for good (the worker-kill
    # drill's followers each missed the one post whose fan-out was redone).
    left = [p for i, p in zip(own, at, strict=True) if i < last]
    next_hint = min(left) if left else max(
        (p + 1 for i, p in zip(own, at, strict=True) if i >= last), default=hint)
    more = len(merged) == limit
    return merged, (f"{last}.{next_hint}" if more else None)


async def home(ctx: Ctx, account_id: int, *, limit: int = 40, cursor: str | None = None,
               session_key: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    ids, nxt = await home_ids(ctx, account_id, check_limit(ctx, limit), cursor,
                              session_key=session_key)
    return await hydrate(ctx, account_id, ids), nxt


async def home_json(ctx: Ctx, account_id: int, *, limit: int = 40, cursor: str | None = None,
                    session_key: str | None = None) -> bytes:
    """The home page's JSON, `{"items": [...], "next_cursor": ...}` (app.services.postjson)."""
    ids, nxt = await home_ids(ctx, account_id, check_limit(ctx, limit), cursor,
                              session_key=session_key)
    return page_json(await hydrate_json(ctx, account_id, ids), nxt)


async def pull_json(ctx: Ctx, account_id: int, limit: int) -> bytes:
    """The pull-on-read baseline's page as JSON (same rendering as `home_json`)."""
    ids = await pull_ids(ctx, account_id, limit)
    return page_json(await hydrate_json(ctx, account_id, ids),
                     str(ids[-1]) if len(ids) == limit else None)


Page = tuple[list[int], str | None]  # a page's post ids, newest first, and the next cursor


def _paged(ids: list[int], limit: int) -> Page:
    return ids, (str(ids[-1]) if len(ids) == limit else None)


async def documents(ctx: Ctx, viewer_id: int, page: Page
                    ) -> tuple[list[dict[str, Any]], str | None]:
    """A page's post documents (posts.hydrate), for the web UI and other dict users."""
    ids, nxt = page
    return await hydrate(ctx, viewer_id, ids), nxt


async def page_bytes(ctx: Ctx, viewer_id: int, page: Page) -> bytes:
    """A page as the API sends it, `{"items": [...], "next_cursor": ...}`: the same documents
    rendered by app.services.postjson (items kept per process, concurrent pages in one query)
    instead of built as dicts and dumped on every request."""
    ids, nxt = page
    return page_json(await hydrate_json(ctx, viewer_id, ids), nxt)


async def account_post_ids(ctx: Ctx, viewer_id: int, account_id: int, *, limit: int = 40,
                           cursor: str | None = None) -> Page:
    """An account's posts and echoes, newest first; refused when either blocked the other."""
    limit = check_limit(ctx, limit)
    max_id, _ = parse_cursor(cursor)
    # the account, a block between them and the page's ids in one query (were two)
    r = await ctx.ro.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND"
        " blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)) AS blocked,"
        " ARRAY(SELECT id FROM posts WHERE author_id = $2 AND NOT hidden"
        f" AND id < coalesce($3::bigint, {MAX_ID}) ORDER BY id DESC LIMIT $4) AS ids"
        " FROM accounts WHERE id = $2", viewer_id, account_id, max_id, limit)
    if r is None:
        raise NotFound("no such account")
    if r["blocked"]:
        raise Forbidden("you cannot see posts of this account: one of you blocked the other")
    return _paged(list(r["ids"]), limit)


async def account_posts(ctx: Ctx, viewer_id: int, account_id: int, *, limit: int = 40,
                        cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    return await documents(ctx, viewer_id, await account_post_ids(
        ctx, viewer_id, account_id, limit=limit, cursor=cursor))


async def tag_post_ids(ctx: Ctx, tag: str, *, limit: int = 40, cursor: str | None = None
                       ) -> Page:
    limit = check_limit(ctx, limit)
    max_id, _ = parse_cursor(cursor)
    tag = tag.lstrip("#").lower()[:64]
    return _paged([x["post_id"] for x in await ctx.ro.fetch(
        "SELECT post_id FROM post_tags WHERE tag = $1"
        f" AND post_id < coalesce($2::bigint, {MAX_ID})"
        " ORDER BY post_id DESC LIMIT $3", tag, max_id, limit)], limit)


async def tag_posts(ctx: Ctx, viewer_id: int, tag: str, *, limit: int = 40,
                    cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    return await documents(ctx, viewer_id, await tag_post_ids(ctx, tag, limit=limit,
                                                              cursor=cursor))


async def latest_ids(ctx: Ctx, *, limit: int = 40, cursor: str | None = None) -> Page:
    """The newest public posts (not replies) of the whole network."""
    limit = check_limit(ctx, limit)
    max_id, _ = parse_cursor(cursor)
    return _paged([x["id"] for x in await ctx.ro.fetch(
        "SELECT id FROM posts WHERE NOT hidden AND reply_to_id IS NULL"
        f" AND id < coalesce($1::bigint, {MAX_ID}) ORDER BY id DESC LIMIT $2",
        max_id, limit)], limit)


async def latest(ctx: Ctx, viewer_id: int, *, limit: int = 40, cursor: str | None = None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    return await documents(ctx, viewer_id, await latest_ids(ctx, limit=limit, cursor=cursor))


async def pull_ids(ctx: Ctx, account_id: int, limit: int, max_id: int | None = None
                   ) -> list[int]:
    """The pull-on-read baseline: build the page from follows with SQL on every request."""
    return [r["id"] for r in await ctx.ro.fetch(
        "SELECT p.id FROM posts p WHERE p.author_id IN (SELECT followee_id FROM follows"
        " WHERE follower_id = $1 UNION ALL SELECT $1) AND NOT p.hidden"
        f" AND p.id < coalesce($2::bigint, {MAX_ID}) ORDER BY p.id DESC LIMIT $3",
        account_id, max_id, limit)]
