"""Post documents written straight to JSON bytes, for the pages read most (the home feed).

The same documents as `posts.hydrate` gives (same query filter: deleted, hidden, blocked and
muted posts left out), without building a dict per post: the parts of a post that never change
(id, text, tags, mentions, reply and root ids, images, time: posts are not edited and ids are
not reused) are rendered once per process and kept (`Ctx.post_parts`, bounded), the author's
part is kept per (id, username, display name, avatar, badge), and counters, `upvoted` and
`hidden` are written fresh from the query on every read. The query is shared by the requests in
flight (app.batching): one query for the (viewer, post) pairs of all of them.
"""

from __future__ import annotations

import asyncpg
import orjson

from app.batching import Batcher
from app.context import Ctx
from app.services.posts import HYDRATE_FROM_TEMPLATE, UNSEEN_TEMPLATE, _derived, _media_json

# One query for the pages of concurrent requests (app.batching): ($1, $2) the (viewer, post)
# pairs; $3 the posts whose parts this process does not hold (their text and images are sent;
# those of the others are not sent again)
FAST_SQL = UNSEEN_TEMPLATE.format(viewers="$1::bigint[]") + """
SELECT q.viewer, p.id, p.hidden, p.upvotes_count, p.replies_count, p.echoes_count,
       (u.account_id IS NOT NULL) AS upvoted,
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
Rows = dict[int, asyncpg.Record]  # post id -> its row, for one viewer


class PartsLost(Exception):
    """A post's text was neither sent by the query nor held by this process."""


async def _fetch_rows(ctx: Ctx, items: list[tuple[int, list[int], list[int]]]) -> list[Rows]:
    """The rows of (viewer, post ids, posts whose parts are wanted) requests, one query."""
    viewers: list[int] = []
    pids: list[int] = []
    need: set[int] = set()
    for viewer, ids, wanted in items:  # a viewer twice in a batch: its rows come twice
        need.update(wanted)
        viewers += [viewer] * len(ids)
        pids += ids
    async with ctx.ro.acquire() as con:
        rows = await con.fetch(FAST_SQL, viewers, pids, list(need))
    by_viewer: dict[int, Rows] = {}
    for r in rows:
        by_viewer.setdefault(r[0], {})[r[1]] = r
    return [by_viewer.get(v, {}) for v, _, _ in items]


def _rows_batcher(ctx: Ctx) -> Batcher[tuple[int, list[int], list[int]], Rows]:
    b = ctx.batchers.get("post_rows")
    if b is None:
        b = ctx.batchers["post_rows"] = Batcher("post_rows",
                                                   lambda items: _fetch_rows(ctx, items))
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


_ITEM = (b'{%b,%b,"upvotes_count":%d,"replies_count":%d,"echoes_count":%d,"upvoted":%b,'
         b'"hidden":%b,"echo_of":%b}')
_ECHO = b'{%b,%b,"upvotes_count":%d,"replies_count":%d,"echoes_count":%d}'


async def hydrate_json(ctx: Ctx, viewer_id: int, ids: list[int]) -> list[bytes]:
    """JSON of the post documents for `ids` in that order (see `posts.hydrate`)."""
    if not ids:
        return []
    parts_of = ctx.post_parts.get
    # the parts held now are kept here: the cache may be emptied while the query runs
    known: dict[int, tuple[bytes, bool]] = {}
    need: list[int] = []  # the others: the query sends their text and images
    for i in (*ids, *filter(None, map(ctx.echo_of.get, ids))):
        got = parts_of(i)
        if got is None:
            need.append(i)
        else:
            known[i] = got
    by_id = await _rows_batcher(ctx)((viewer_id, ids, need))
    try:
        return _items(ctx, ids, by_id, known)
    except PartsLost:
        # an echoed post this process no longer knew as one (its memory of echoes is bounded),
        # so it did not ask for the text, and did not hold it either: read the missing texts
        rows = [r for r in map(by_id.get, ids) if r is not None]
        lost = [i for r in rows
                for i, raw in ((r["id"], r["parts"]), (r["echo_of_id"], r["e_parts"]))
                if i and raw is None and i not in known and parts_of(i) is None]
        for pid, raw in await ctx.ro.fetch(PARTS_SQL, lost):
            known[pid] = _parts(ctx, pid, raw, known)
        for pid in lost:  # deleted meanwhile: rendered without its text, not kept
            known.setdefault(pid, _render_parts(ctx, pid, ["", None, None, None]))
        return _items(ctx, ids, by_id, known)


def _items(ctx: Ctx, ids: list[int], by_id: Rows, known: dict[int, tuple[bytes, bool]]
           ) -> list[bytes]:
    author_of = ctx.author_parts.get
    out: list[bytes] = []
    for i in ids:
        r = by_id.get(i)
        if r is None:
            continue
        (_, pid, hidden, up, rep, ech, upvoted, aid, username, display, avatar, verified,
         eid, e_hidden, e_up, e_rep, e_ech, e_aid, e_username, e_display, e_avatar, e_verified,
         raw, e_raw) = r
        parts, plain = _parts(ctx, pid, raw, known)
        echo = b"null"
        if eid:
            ctx.echo_of.put(pid, eid)
            if e_aid is None or e_hidden:
                if plain:
                    continue  # a plain echo of a post that is gone
            else:
                echo = _ECHO % (
                    _parts(ctx, eid, e_raw, known)[0],
                    _author(ctx, e_aid, e_username, e_display, e_avatar, e_verified),
                    e_up, e_rep, e_ech)
        author = author_of((aid, username, display, avatar, verified)) or \
            _author(ctx, aid, username, display, avatar, verified)
        out.append(_ITEM % (parts, author, up, rep, ech, b"true" if upvoted else b"false",
                            b"true" if hidden else b"false", echo))
    return out


def page_json(items: list[bytes], next_cursor: str | None) -> bytes:
    """`{"items": [...], "next_cursor": ...}` from rendered items."""
    return b"".join((b'{"items":[', b",".join(items), b'],"next_cursor":',
                     orjson.dumps(next_cursor), b"}"))
