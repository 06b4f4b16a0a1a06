"""Post documents written straight to JSON bytes, for the pages read most (the home feed).

The same documents as `posts.hydrate` gives (same query filter: deleted, hidden, blocked and
muted posts left out), without building a dict per post, and for most posts without any
per-post work in Python:
- each process keeps whole rendered items (`Ctx.items`) by key: the post id, the row versions
  (xmin) of the post, its author, the echoed post and its author, and `+`/`-` for `upvoted`.
  Any change to a counter, `hidden` or a profile makes a new row version, so a new key.
- A page's query (KEYS_SQL) gives each request the keys of its items, in order; the items are
  looked up by key and joined, all in C (dict lookups through `map`, `bytes.join`).
- Only the items whose keys are not held are read whole (ROWS_SQL) and rendered: the parts of a
  post that never change (id, text, tags, mentions, reply and root ids, images, time: posts are
  not edited and ids are not reused) are rendered once per process (`Ctx.post_parts`), the
  author's part per (id, username, display name, avatar, badge) (`Ctx.author_parts`); both of
  an item's `upvoted` variants are kept.
The requests in flight share both queries (app.batching). All memories are bounded (emptied
when full); a key is never trusted without the query's versions.
"""

from __future__ import annotations

from itertools import accumulate

import asyncpg
import orjson
from prometheus_client import Counter

from freehold.app.batching import Batcher
from freehold.app.context import Ctx
from freehold.app.services.posts import (
    HYDRATE_FROM_TEMPLATE,
    UNSEEN_TEMPLATE,
    UPVOTED_TEMPLATE,
    _derived,
    _media_json,
)


def _key(viewer: str) -> str:
    """An item's key (see the module doc), for the account `viewer` reads it as."""
    return f"""p.id::text || '.' || p.xmin::text || '.' || a.xmin::text
         || coalesce('.' || e.xmin::text || '.' || ea.xmin::text, '')
         || CASE WHEN {UPVOTED_TEMPLATE.format(viewer=viewer)} THEN '+' ELSE '-' END"""


# The keys of the items of the pages of concurrent requests, one row per request that has any:
# ($1, $2, $3) each request's (viewer, first index in $4, number of posts), $4 the posts.
KEYS_SQL = UNSEEN_TEMPLATE.format(viewers="$1::bigint[]") + f"""
SELECT r.req, array_agg({_key('r.viewer')} ORDER BY q.n) AS keys
""" + HYDRATE_FROM_TEMPLATE.format(
    source="unnest($4::bigint[]) WITH ORDINALITY AS q(pid, n) "
           "JOIN unnest($1::bigint[], $2::int[], $3::int[]) WITH ORDINALITY "
           "AS r(viewer, start, cnt, req) ON q.n > r.start AND q.n <= r.start + r.cnt "
           "JOIN posts p ON p.id = q.pid",
    viewer="r.viewer") + "GROUP BY r.req\n"
# The rows of the (viewer, post) pairs $1, $2 whose items are not held, whole; with the text
# and images of the posts $3 whose parts this process does not hold (not sent again otherwise).
ROWS_SQL = UNSEEN_TEMPLATE.format(viewers="$1::bigint[]") + f"""
SELECT q.viewer, p.id, {_key('q.viewer')} AS key,
       p.hidden, p.upvotes_count, p.replies_count, p.echoes_count,
       p.author_id, a.username, a.display_name, a.avatar_key, a.is_verified,
       p.echo_of_id, e.hidden AS e_hidden,
       e.upvotes_count AS e_upvotes, e.replies_count AS e_replies, e.echoes_count AS e_echoes,
       e.author_id AS e_author_id, ea.username AS e_username,
       ea.display_name AS e_display_name, ea.avatar_key AS e_avatar_key,
       ea.is_verified AS e_is_verified,
       CASE WHEN p.id = ANY($3) THEN
            ARRAY[p.body, p.reply_to_id::text, p.root_id::text, p.media::text] END AS parts,
       CASE WHEN e.id = ANY($3) OR p.id = ANY($3) THEN
            ARRAY[e.body, e.reply_to_id::text, e.root_id::text, e.media::text] END AS e_parts
""" + HYDRATE_FROM_TEMPLATE.format(
    source="unnest($1::bigint[], $2::bigint[]) AS q(viewer, pid) JOIN posts p ON p.id = q.pid",
    viewer="q.viewer")
PARTS_SQL = """SELECT id, ARRAY[body, reply_to_id::text, root_id::text, media::text]
FROM posts WHERE id = ANY($1::bigint[])"""
FEED_ITEMS = Counter("freehold_feed_items", "Post items of JSON feed pages, by where they came "
                     "from: kept (this process's memory, at the rows' versions) or made (from "
                     "rows read whole)", ["source"])
_KEPT, _MADE = FEED_ITEMS.labels("kept"), FEED_ITEMS.labels("made")
Ask = tuple[int, list[int]]  # (viewer, post ids): a request's part of a batch


class PartsLost(Exception):
    """A post's text was neither sent by the query nor held by this process."""


async def _pages(ctx: Ctx, asks: list[Ask], primary: bool = False) -> list[list[bytes]]:
    """The items of the requests `asks`, in order: keys for all, then the rows of the items
    not held, whole; one connection (the primary's with `primary`), one query each for the
    whole batch."""
    counts = [len(ids) for _, ids in asks]
    pids = [i for _, ids in asks for i in ids]

    async def read(con: asyncpg.Connection) -> tuple[list[list[str]], list[list[bytes]],
                                                     list[tuple[int, int, Ask]]]:
        # reads only (and this process's item memory): run again when the primary moved
        keys_of: list[list[str]] = [[] for _ in asks]
        for req, keys in await con.fetch(KEYS_SQL, [v for v, _ in asks],
                                         [0, *accumulate(counts[:-1])], counts, pids):
            keys_of[req - 1] = keys
        item_of = ctx.items.get
        pages = [list(map(item_of, keys)) for keys in keys_of]
        missing = [(n, k, (asks[n][0], _pid(keys_of[n][k])))  # (request, index, pair)
                   for n, page in enumerate(pages) if None in page
                   for k, item in enumerate(page) if item is None]
        if missing:
            made = await _make(ctx, con, {pair for _, _, pair in missing})
            for n, k, pair in missing:
                # (not there: deleted or hidden since the keys were read, left out)
                pages[n][k] = made.get(pair, b"")
        return keys_of, pages, missing

    keys_of, pages, missing = await (ctx.db if primary else ctx.ro).reads(read)
    _MADE.inc(len(missing))
    _KEPT.inc(sum(map(len, keys_of)) - len(missing))
    return [page if b"" not in page else [x for x in page if x] for page in pages]


def _pid(key: str) -> int:
    return int(key[:key.index(".")])


async def _make(ctx: Ctx, con: asyncpg.Connection, pairs: set[tuple[int, int]]
                ) -> dict[tuple[int, int], bytes]:
    """Read the rows of (viewer, post) pairs whole, render and keep their items; returns each
    pair's item (b"" for a post left out of pages)."""
    parts_of, echo_of = ctx.post_parts.get, ctx.echo_of.get
    known: dict[int, tuple[bytes, bool]] = {}  # parts held now: the memory may be emptied
    need: set[int] = set()  # posts whose text and images the query sends
    for _, pid in pairs:
        for j in (pid, echo_of(pid)):
            if j:
                got = parts_of(j)
                if got is None:
                    need.add(j)
                else:
                    known[j] = got
    viewers, posts = zip(*pairs, strict=True)
    rows = await con.fetch(ROWS_SQL, list(viewers), list(posts), list(need))
    try:
        return {(r[0], r[1]): _keep(ctx, r, known) for r in rows}
    except PartsLost:
        # an echo this process no longer knew as one (its memories are bounded), whose echoed
        # post's text it does not hold either: read the missing texts
        lost = [i for r in rows
                for i, raw in ((r["id"], r["parts"]), (r["echo_of_id"], r["e_parts"]))
                if i and raw is None and i not in known and parts_of(i) is None]
        for pid, raw in await con.fetch(PARTS_SQL, lost):
            known[pid] = _parts(ctx, pid, raw, known)
        for pid in lost:  # deleted meanwhile: rendered without its text, not kept
            known.setdefault(pid, _render_parts(ctx, pid, ["", None, None, None]))
        return {(r[0], r[1]): _keep(ctx, r, known) for r in rows}


def _pages_batcher(ctx: Ctx, primary: bool = False) -> Batcher[Ask, list[bytes]]:
    name = "post_rows_primary" if primary else "post_rows"
    b = ctx.batchers.get(name)
    if b is None:
        b = ctx.batchers[name] = Batcher(name, lambda asks: _pages(ctx, asks, primary))
    return b


def _parts(ctx: Ctx, pid: int, raw: list[str | None] | None,
           known: dict[int, tuple[bytes, bool]]) -> tuple[bytes, bool]:
    """(`"id":…,"body":…,"tags":…,"mentions":…,"reply_to_id":…,"root_id":…,"media":…,
    "created_at":…`, the post has no text) of a post: what never changes, rendered once per
    process from `raw` (text, reply id, root id, images) when the query sent it, else taken
    from `known` (what the request found held when it began) or this process's cache."""
    got = (known.get(pid) or ctx.post_parts.get(pid)) if raw is None else None
    if got is None:
        if raw is None:
            raise PartsLost(pid)
        got = _render_parts(ctx, pid, raw)
        ctx.post_parts.put(pid, got)
    return got


def _render_parts(ctx: Ctx, pid: int, raw: list[str | None]) -> tuple[bytes, bool]:
    body, reply_to, root, media = raw
    tags, names, created = _derived(pid, body or "")
    doc = {"id": str(pid), "body": body, "tags": tags, "mentions": names,
           "reply_to_id": reply_to, "root_id": root,
           "media": _media_json(ctx, orjson.loads(media)) if media else [],
           "created_at": created}
    return orjson.dumps(doc)[1:-1], not body


def _author(ctx: Ctx, aid: int, username: str, display: str | None, avatar: str | None,
            verified: bool) -> bytes:
    key = (aid, username, display, avatar, verified)
    got = ctx.author_parts.get(key)
    if got is None:
        got = b'"author":' + orjson.dumps({
            "id": str(aid), "username": username, "display_name": display or username,
            "avatar_url": f"{ctx.settings.media_url_prefix}{avatar}" if avatar else None,
            "verified": verified})
        ctx.author_parts.put(key, got)
    return got


_HEAD = b'{%b,%b,"upvotes_count":%d,"replies_count":%d,"echoes_count":%d,"upvoted":'
_TAIL = b',"hidden":%b,"echo_of":%b}'
_ECHO = b'{%b,%b,"upvotes_count":%d,"replies_count":%d,"echoes_count":%d}'


async def hydrate_json(ctx: Ctx, viewer_id: int, ids: list[int], *, primary: bool = False
                       ) -> list[bytes]:
    """JSON of the post documents for `ids` in that order (see `posts.hydrate`), read from
    the primary with `primary` (else from `ctx.ro`)."""
    if not ids:
        return []
    ctx.items.expire()
    return await _pages_batcher(ctx, primary)((viewer_id, ids))


def item_id(item: bytes) -> int:
    """The post id of a rendered item: every item begins `{"id":"<id>",` (_render_parts
    puts "id" first, _HEAD puts the parts first)."""
    return int(item[7:item.index(b'"', 7)])


def _keep(ctx: Ctx, r: asyncpg.Record, known: dict[int, tuple[bytes, bool]]) -> bytes:
    """Render a row's item, keep both of its `upvoted` variants; returns the row's."""
    (_, pid, key, hidden, up, rep, ech, aid, username, display, avatar, verified,
     eid, e_hidden, e_up, e_rep, e_ech, e_aid, e_username, e_display, e_avatar, e_verified,
     raw, e_raw) = r
    parts, plain = _parts(ctx, pid, raw, known)
    echo = b"null"
    yes = no = b""
    if eid:
        ctx.echo_of.put(pid, eid)
        if e_aid is None or e_hidden:
            echo = b"" if plain else echo  # a plain echo of a post that is gone: left out
        else:
            echo = _ECHO % (
                _parts(ctx, eid, e_raw, known)[0],
                _author(ctx, e_aid, e_username, e_display, e_avatar, e_verified),
                e_up, e_rep, e_ech)
    if echo:
        head = _HEAD % (parts, _author(ctx, aid, username, display, avatar, verified),
                        up, rep, ech)
        tail = _TAIL % (b"true" if hidden else b"false", echo)
        yes, no = head + b"true" + tail, head + b"false" + tail
    base = key[:-1]
    ctx.items.put(base + "+", yes)
    ctx.items.put(base + "-", no)
    return yes if key[-1] == "+" else no


def page_json(items: list[bytes], next_cursor: str | None) -> bytes:
    """`{"items": [...], "next_cursor": ...}` from rendered items."""
    return b"".join((b'{"items":[', b",".join(items), b'],"next_cursor":',
                     orjson.dumps(next_cursor), b"}"))
