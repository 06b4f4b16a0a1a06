"""Post documents written straight to JSON bytes, for the pages read most (the home feed).

The same documents as `posts.hydrate` gives (same query filter: deleted, hidden, blocked and
muted posts left out), without building a dict per post: the parts of a post that never change
(id, text, tags, mentions, reply and root ids, images, time: posts are not edited and ids are
not reused) are rendered once per process and kept (`Ctx.post_parts`, bounded), the author's
part is kept per (id, username, display name, avatar, badge), and counters, `upvoted` and
`hidden` are written fresh from the query on every read.
"""

from __future__ import annotations

import orjson

from app.context import Ctx
from app.services.posts import HYDRATE_FROM, _derived, _media_json

# $3: the posts whose parts this process holds: their text and images are not sent again
FAST_SQL = """
SELECT p.id, p.hidden, p.upvotes_count, p.replies_count, p.echoes_count,
       (u.account_id IS NOT NULL) AS upvoted,
       p.author_id, a.username, a.display_name, a.avatar_key, a.is_verified,
       p.echo_of_id, e.hidden AS e_hidden,
       e.upvotes_count AS e_upvotes, e.replies_count AS e_replies, e.echoes_count AS e_echoes,
       e.author_id AS e_author_id, ea.username AS e_username,
       ea.display_name AS e_display_name, ea.avatar_key AS e_avatar_key,
       ea.is_verified AS e_is_verified,
       CASE WHEN p.id <> ALL($3) THEN
            ARRAY[p.body, p.reply_to_id::text, p.root_id::text, p.media::text] END AS parts,
       CASE WHEN e.id <> ALL($3) THEN
            ARRAY[e.body, e.reply_to_id::text, e.root_id::text, e.media::text] END AS e_parts
""" + HYDRATE_FROM

_TRUE_FALSE = {True: b"true", False: b"false"}


def _parts(ctx: Ctx, pid: int, raw: list[str | None] | None) -> tuple[bytes, bool]:
    """(`"id":…,"body":…,"tags":…,"mentions":…,"reply_to_id":…,"root_id":…,"media":…,
    "created_at":…`, the post has no text) of a post: what never changes, rendered once per
    process from `raw` (text, reply id, root id, images) when the query sent it."""
    got = ctx.post_parts.get(pid)
    if got is None or raw is not None:
        body, reply_to, root, media = raw or ("", None, None, None)
        tags, names, created = _derived(pid, body or "")
        doc = {"id": str(pid), "body": body, "tags": tags, "mentions": names,
               "reply_to_id": reply_to, "root_id": root,
               "media": _media_json(ctx, orjson.loads(media)) if media else [],
               "created_at": created}
        got = (orjson.dumps(doc)[1:-1], not body)
        ctx.post_parts.put(pid, got)
    return got


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


def _counts(up: int, rep: int, ech: int) -> bytes:
    return b',"upvotes_count":%d,"replies_count":%d,"echoes_count":%d' % (up, rep, ech)


async def hydrate_json(ctx: Ctx, viewer_id: int, ids: list[int]) -> list[bytes]:
    """JSON of the post documents for `ids` in that order (see `posts.hydrate`)."""
    if not ids:
        return []
    held = [i for i in ids if i in ctx.post_parts]
    held += [e for e in (ctx.echo_of.get(i) for i in held) if e]
    rows = await ctx.ro.fetch(FAST_SQL, ids, viewer_id, held)
    by_id = {r[0]: r for r in rows}
    out: list[bytes] = []
    for i in ids:
        r = by_id.get(i)
        if r is None:
            continue
        (pid, hidden, up, rep, ech, upvoted, aid, username, display, avatar, verified,
         eid, e_hidden, e_up, e_rep, e_ech, e_aid, e_username, e_display, e_avatar, e_verified,
         raw, e_raw) = r
        parts, plain = _parts(ctx, pid, raw)
        echo = b"null"
        if eid:
            ctx.echo_of.put(pid, eid)
            if e_aid is None or e_hidden:
                if plain:
                    continue  # a plain echo of a post that is gone
            else:
                echo = b"".join((
                    b"{", _parts(ctx, eid, e_raw)[0], b",",
                    _author(ctx, e_aid, e_username, e_display, e_avatar, e_verified),
                    _counts(e_up, e_rep, e_ech), b"}"))
        out.append(b"".join((
            b"{", parts, b",", _author(ctx, aid, username, display, avatar, verified),
            _counts(up, rep, ech), b',"upvoted":', _TRUE_FALSE[upvoted], b',"hidden":',
            _TRUE_FALSE[hidden], b',"echo_of":', echo, b"}")))
    return out


def page_json(items: list[bytes], next_cursor: str | None) -> bytes:
    """`{"items": [...], "next_cursor": ...}` from rendered items."""
    return b"".join((b'{"items":[', b",".join(items), b'],"next_cursor":',
                     orjson.dumps(next_cursor), b"}"))
