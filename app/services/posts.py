"""Posts: create (text, images, replies, echoes), delete for real, upvotes, threads, hydrate."""

from __future__ import annotations

import functools
from typing import Any

import asyncpg

from freehold.app.context import Ctx
from freehold.app.ids import id_datetime, new_id, parse_id
from freehold.app.readwrite import PRIMARY_READS, fetchrow_fresh
from freehold.app.redis_client import STREAM_DELETES, STREAM_EVENTS, STREAM_POSTS, author_key
from freehold.app.services import audit
from freehold.app.services.accounts import media_url
from freehold.app.services.errors import Conflict, Forbidden, Invalid, NotFound, Suspended
from freehold.app.services.media import new_media_key, sniff_image
from freehold.app.services.text import check_body, hashtags, mentions

# the accounts whose posts the viewers {viewers} (a bigint[] expression) do not see, as
# (viewer, other) rows: blocked either way, muted. Made once per query and matched by hash:
# a test of blocks and mutes per post row cost ~40 % of the home feed's query in PostgreSQL.
UNSEEN_TEMPLATE = """WITH unseen AS MATERIALIZED (
  SELECT blocker_id AS viewer, blocked_id AS other FROM blocks WHERE blocker_id = ANY({viewers})
  UNION ALL
  SELECT blocked_id, blocker_id FROM blocks WHERE blocked_id = ANY({viewers})
  UNION ALL
  SELECT muter_id, muted_id FROM mutes WHERE muter_id = ANY({viewers}))
"""
# whether {viewer} upvoted the post p: a lookup on upvotes' primary key per post (a LEFT JOIN
# let the planner take the post_id index and filter every upvote of the post by viewer: ~40
# rows read per post with 2 M upvotes, thousands on a popular post)
UPVOTED_TEMPLATE = """EXISTS (SELECT 1 FROM upvotes u
                WHERE u.account_id = {viewer} AND u.post_id = p.id)"""
HYDRATE_SQL = UNSEEN_TEMPLATE.format(viewers="ARRAY[$2::bigint]") + """
SELECT p.id, p.author_id, p.body, p.reply_to_id, p.root_id, p.echo_of_id, p.media, p.hidden,
       p.upvotes_count, p.replies_count, p.echoes_count,
       a.username, a.display_name, a.avatar_key, a.is_verified,
       e.author_id AS e_author_id, e.body AS e_body, e.reply_to_id AS e_reply_to_id,
       e.root_id AS e_root_id, e.media AS e_media, e.hidden AS e_hidden,
       e.upvotes_count AS e_upvotes, e.replies_count AS e_replies, e.echoes_count AS e_echoes,
       ea.username AS e_username, ea.display_name AS e_display_name,
       ea.avatar_key AS e_avatar_key, ea.is_verified AS e_is_verified,
       """ + UPVOTED_TEMPLATE.format(viewer="$2") + """ AS upvoted
"""
# which posts a viewer may see, and what a document joins (app.services.postjson too):
# `source` names the posts `p`, `viewer` the account reading them; the query begins with
# UNSEEN_TEMPLATE for its viewers
HYDRATE_FROM_TEMPLATE = """
FROM {source}
JOIN accounts a ON a.id = p.author_id
LEFT JOIN posts e ON e.id = p.echo_of_id
LEFT JOIN accounts ea ON ea.id = e.author_id
WHERE (NOT p.hidden OR p.author_id = {viewer})
  AND NOT EXISTS (SELECT 1 FROM unseen x
                  WHERE x.viewer = {viewer} AND x.other IN (p.author_id, e.author_id))
"""
# posts $1 as seen by $2
HYDRATE_FROM = HYDRATE_FROM_TEMPLATE.format(
    source="posts p", viewer="$2") + "  AND p.id = ANY($1::bigint[])\n"
HYDRATE_SQL += HYDRATE_FROM


def _media_json(ctx: Ctx, media: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": str(m["id"]), "type": m["type"], "url": media_url(ctx, m["key"])}
            for m in media]


def _author(ctx: Ctx, aid: int, username: str, display: str, avatar: str | None,
            verified: bool) -> dict[str, Any]:
    return {"id": str(aid), "username": username, "display_name": display or username,
            "avatar_url": media_url(ctx, avatar), "verified": verified}


@functools.lru_cache(maxsize=65536)
def _derived(pid: int, body: str) -> tuple[list[str], list[str], str]:
    """(tags, mentions, created_at) of a post: pure functions of its id and text, which never
    change (no edits; ids are never reused), remembered for the posts that feeds repeat."""
    return (hashtags(body) if "#" in body else [], mentions(body) if "@" in body else [],
            id_datetime(pid).isoformat())


def _post_doc(ctx: Ctx, pid: int, author: dict[str, Any], body: str, reply_to: int | None,
              root: int | None, media: list[dict[str, Any]], up: int, rep: int, ech: int
              ) -> dict[str, Any]:
    tags, names, created = _derived(pid, body)
    return {
        "id": str(pid), "author": author, "body": body,
        "tags": list(tags), "mentions": list(names),
        "reply_to_id": str(reply_to) if reply_to else None,
        "root_id": str(root) if root else None,
        "media": _media_json(ctx, media) if media else [],
        "upvotes_count": up, "replies_count": rep, "echoes_count": ech,
        "created_at": created,
    }


def post_json(ctx: Ctx, r: asyncpg.Record) -> dict[str, Any]:
    doc = _post_doc(ctx, r["id"], _author(ctx, r["author_id"], r["username"],
                                          r["display_name"], r["avatar_key"], r["is_verified"]),
                    r["body"], r["reply_to_id"], r["root_id"], r["media"], r["upvotes_count"],
                    r["replies_count"], r["echoes_count"])
    doc["upvoted"] = r["upvoted"]
    doc["hidden"] = r["hidden"]
    echo = None
    if r["echo_of_id"] and r["e_author_id"] is not None and not r["e_hidden"]:
        echo = _post_doc(ctx, r["echo_of_id"],
                         _author(ctx, r["e_author_id"], r["e_username"], r["e_display_name"],
                                 r["e_avatar_key"], r["e_is_verified"]),
                         r["e_body"], r["e_reply_to_id"], r["e_root_id"], r["e_media"],
                         r["e_upvotes"], r["e_replies"], r["e_echoes"])
    doc["echo_of"] = echo
    return doc


async def hydrate(ctx: Ctx, viewer_id: int, ids: list[int], *, pool: Any = None
                  ) -> list[dict[str, Any]]:
    """Post documents for `ids` in that order, leaving out deleted, hidden, blocked, muted."""
    if not ids:
        return []
    rows = await (pool or ctx.ro).fetch(HYDRATE_SQL, ids, viewer_id)
    by_id = {r["id"]: r for r in rows}
    if pool is None and len(by_id) < len(set(ids)) and ctx.has_replica \
            and not PRIMARY_READS.get():
        # left out as hidden, muted or blocked, or not on the replica yet (app.readwrite)?
        lost = [i for i in ids if i not in by_id]
        there = {r["id"] for r in await ctx.replica.fetch(
            "SELECT id FROM posts WHERE id = ANY($1::bigint[])", lost)}
        if lost := [i for i in lost if i not in there]:
            by_id.update((r["id"], r) for r in await ctx.db.fetch(HYDRATE_SQL, lost,
                                                                  viewer_id))
    out = []
    for i in ids:
        r = by_id.get(i)
        if r is None:
            continue
        if r["echo_of_id"] and not r["body"] and (r["e_author_id"] is None or r["e_hidden"]):
            continue  # a plain echo of a post that is gone
        out.append(post_json(ctx, r))
    return out


def check_limit(ctx: Ctx, limit: int) -> int:
    """A page's length, checked: 1 to settings.feed_page_max (feeds, lists, thread replies)."""
    if not 1 <= limit <= ctx.settings.feed_page_max:
        raise Invalid(f"limit: 1 to {ctx.settings.feed_page_max}", field="limit")
    return limit


async def check_can_post(conn: Any, account_id: int) -> None:
    row = await conn.fetchrow("SELECT suspended_at FROM accounts WHERE id = $1", account_id)
    if row is None:
        raise NotFound("no such account")
    if row["suspended_at"] is not None:
        raise Suspended("your account is suspended: you can appeal the decisions against it")


async def _blocked_between(conn: Any, a: int, b: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2)"
        " OR (blocker_id = $2 AND blocked_id = $1))", a, b))


async def upload_media(ctx: Ctx, account_id: int, data: bytes) -> dict[str, Any]:
    """Store one image for a later post; returns {id, type, url}."""
    if ctx.media is None:
        raise Invalid("media storage is not configured on this server", field="file")
    if not data:
        raise Invalid("empty file", field="file")
    if len(data) > ctx.settings.media_max_bytes:
        raise Invalid(f"image larger than {ctx.settings.media_max_bytes} bytes: make it smaller",
                      field="file")
    await check_can_post(ctx.db, account_id)
    ctype, ext = sniff_image(data)
    mid, key = new_media_key("media", ext)
    await ctx.media.put(key, data, ctype)
    await ctx.db.execute(
        "INSERT INTO media (id, owner_id, s3_key, content_type, bytes) VALUES ($1,$2,$3,$4,$5)",
        mid, account_id, key, ctype, len(data))
    return {"id": str(mid), "type": ctype, "url": media_url(ctx, key)}


async def create_post(ctx: Ctx, author_id: int, body: str, *, reply_to: int | str | None = None,
                      echo_of: int | str | None = None,
                      media_ids: list[str] | None = None) -> dict[str, Any]:
    """Create a post, a reply (`reply_to`) or an echo (`echo_of`, optional comment in `body`)."""
    s = ctx.settings
    body = check_body(body, s.post_max_chars, allow_empty=echo_of is not None or bool(media_ids))
    media_ids = list(media_ids or [])
    if len(media_ids) > s.post_max_images:
        raise Invalid(f"{len(media_ids)} images: at most {s.post_max_images} per post",
                      field="media_ids")
    mids = [parse_id(m) for m in media_ids]
    if any(m is None for m in mids) or len(set(mids)) != len(mids):
        raise Invalid("media_ids: give distinct ids returned by the upload", field="media_ids")
    parent_id = echo_id = None
    if reply_to is not None and reply_to != "":
        parent_id = parse_id(reply_to)
        if parent_id is None:
            raise NotFound("the post you reply to does not exist")
    if echo_of is not None and echo_of != "":
        echo_id = parse_id(echo_of)
        if echo_id is None:
            raise NotFound("the post you echo does not exist")
    if parent_id and echo_id:
        raise Invalid("a post is either a reply or an echo, not both", field="reply_to_id")
    pid = new_id()

    async def write(conn: asyncpg.Connection) -> list[tuple[str, int]]:
        """The post's rows (a database unit: run again when the primary moved before COMMIT);
        returns whom to notify."""
        notify: list[tuple[str, int]] = []
        echo = echo_id
        await check_can_post(conn, author_id)
        root_id = None
        if parent_id:
            parent = await conn.fetchrow(
                "SELECT author_id, root_id, hidden FROM posts WHERE id = $1", parent_id)
            if parent is None or parent["hidden"]:
                raise NotFound("the post you reply to does not exist")
            if await _blocked_between(conn, author_id, parent["author_id"]):
                raise Forbidden("you cannot reply to this account")
            root_id = parent["root_id"] or parent_id
            notify.append(("reply", parent["author_id"]))
        if echo:
            target = await conn.fetchrow(
                "SELECT author_id, echo_of_id, body, hidden FROM posts WHERE id = $1", echo)
            if target is None or target["hidden"]:
                raise NotFound("the post you echo does not exist")
            if target["echo_of_id"] and not target["body"]:
                echo = target["echo_of_id"]  # echo of a plain echo: echo the original
                target = await conn.fetchrow(
                    "SELECT author_id, hidden FROM posts WHERE id = $1", echo)
                if target is None or target["hidden"]:
                    raise NotFound("the post you echo does not exist")
            if await _blocked_between(conn, author_id, target["author_id"]):
                raise Forbidden("you cannot echo this account")
            if not body and await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM posts WHERE author_id = $1 AND echo_of_id = $2"
                    " AND body = '')", author_id, echo):
                raise Conflict("you already echoed this post")
            notify.append(("echo", target["author_id"]))
        media: list[dict[str, Any]] = []
        if mids:
            rows = await conn.fetch(
                "UPDATE media SET post_id = $1 WHERE id = ANY($2::bigint[]) AND owner_id = $3"
                " AND post_id IS NULL RETURNING id, s3_key, content_type, description",
                pid, mids, author_id)
            if len(rows) != len(mids):
                raise Invalid("media_ids: unknown or already used image", field="media_ids")
            order = {m: i for i, m in enumerate(mids)}
            # an image's alt text (set through the Mastodon API) travels with the post
            media = [{"id": r["id"], "key": r["s3_key"], "type": r["content_type"],
                      **({"description": r["description"]} if r["description"] else {})}
                     for r in sorted(rows, key=lambda r: order[r["id"]])]
        await conn.execute(
            "INSERT INTO posts (id, author_id, body, reply_to_id, root_id, echo_of_id, media)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            pid, author_id, body, parent_id, root_id, echo, media)
        await conn.execute("UPDATE accounts SET posts_count = posts_count + 1 WHERE id = $1",
                           author_id)
        if parent_id:
            await conn.execute(
                "UPDATE posts SET replies_count = replies_count + 1 WHERE id = $1", parent_id)
        if echo:
            await conn.execute(
                "UPDATE posts SET echoes_count = echoes_count + 1 WHERE id = $1", echo)
        tags = hashtags(body)
        if tags:
            await conn.executemany(
                "INSERT INTO tags (tag, uses) VALUES ($1, 1) ON CONFLICT (tag) DO UPDATE"
                " SET uses = tags.uses + 1, last_used_at = now()", [(t,) for t in tags])
            await conn.executemany("INSERT INTO post_tags (tag, post_id) VALUES ($1, $2)",
                                   [(t, pid) for t in tags])
        names = mentions(body)
        if names:
            rows = await conn.fetch(
                "INSERT INTO mentions (post_id, account_id) SELECT $1, id FROM accounts"
                " WHERE username = ANY($2::text[]) AND id <> $3 RETURNING account_id",
                pid, names, author_id)
            notify += [("mention", r["account_id"]) for r in rows]
        return notify

    notify = await ctx.db.transaction(write)
    await announce_post(ctx, pid, author_id)
    await emit_events(ctx, [(kind, author_id, target, pid) for kind, target in notify])
    docs = await hydrate(ctx, author_id, [pid], pool=ctx.db)
    return docs[0]


async def announce_post(ctx: Ctx, pid: int, author_id: int) -> None:
    """After commit: queue the fan-out and keep the author's recent-posts list."""
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.xadd(STREAM_POSTS, {"post": str(pid), "author": str(author_id)},
              maxlen=ctx.settings.stream_maxlen, approximate=True)
    akey = author_key(author_id)
    pipe.lpushx(akey, str(pid))
    pipe.ltrim(akey, 0, ctx.settings.feed_cap - 1)
    await pipe.execute()
    ctx.big_heads.drop(author_id)  # this process's readers see the post at once


async def emit_events(ctx: Ctx, events: list[tuple[str, int, int, int | None]]) -> None:
    """Queue notifications: (kind, actor, recipient, post or None)."""
    events = [e for e in events if e[1] != e[2]]
    if not events:
        return
    pipe = ctx.redis.pipeline(transaction=False)
    for kind, actor, target, post in events:
        pipe.xadd(STREAM_EVENTS, {"kind": kind, "actor": str(actor), "target": str(target),
                                  "post": str(post or 0)},
                  maxlen=ctx.settings.stream_maxlen, approximate=True)
    await pipe.execute()


async def delete_post(ctx: Ctx, actor_id: int, post_id: int) -> None:
    """Delete a post for real (its author, or an admin): rows, images, counters."""

    async def write(conn: Any) -> tuple[Any, list[str]]:
        row = await conn.fetchrow(
            "SELECT author_id, reply_to_id, echo_of_id, media <> '[]'::jsonb AS media,"
            " ARRAY(SELECT tag FROM post_tags WHERE post_id = p.id) AS tags"
            " FROM posts p WHERE id = $1", post_id)
        if row is None:
            raise NotFound("no such post")
        if row["author_id"] != actor_id:
            is_admin = await conn.fetchval("SELECT is_admin FROM accounts WHERE id = $1",
                                           actor_id)
            if not is_admin:
                raise Forbidden("you can only delete your own posts")
            await audit.log(conn, actor_id, "post.delete", "post", post_id,
                            {"author_id": row["author_id"]})
        keys = [r["s3_key"] for r in await conn.fetch(
            "DELETE FROM media WHERE post_id = $1 RETURNING s3_key", post_id)]
        await conn.execute("DELETE FROM posts WHERE id = $1", post_id)
        await conn.execute("UPDATE accounts SET posts_count = posts_count - 1 WHERE id = $1",
                           row["author_id"])
        if row["reply_to_id"]:
            await conn.execute(
                "UPDATE posts SET replies_count = replies_count - 1 WHERE id = $1",
                row["reply_to_id"])
        if row["echo_of_id"]:
            await conn.execute(
                "UPDATE posts SET echoes_count = echoes_count - 1 WHERE id = $1",
                row["echo_of_id"])
        return row, keys

    row, keys = await ctx.db.transaction(write)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.lrem(author_key(row["author_id"]), 0, str(post_id))
    # where the post was streamed (app.mastodon.streaming sends the delete to the same
    # streams only: its author's followers, public, its hashtags)
    pipe.xadd(STREAM_DELETES, {
        "post": str(post_id), "author": str(row["author_id"]),
        "reply": "1" if row["reply_to_id"] else "0", "echo": "1" if row["echo_of_id"] else "0",
        "media": "1" if row["media"] else "0", "tags": " ".join(row["tags"])},
        maxlen=10_000, approximate=True)
    await pipe.execute()
    ctx.big_heads.drop(row["author_id"])
    if ctx.media is not None:
        await ctx.media.delete(keys)


# a post $1 as its viewer $2 may open it: its author, whether it is hidden, whether a block
# stands between them (one query: the post and the block were two round trips)
VISIBLE_SQL = """
SELECT p.author_id, p.hidden,
       EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $2 AND blocked_id = p.author_id)
               OR (blocker_id = p.author_id AND blocked_id = $2)) AS blocked
"""


def _check_row(row: Any, viewer_id: int) -> None:
    """NotFound (no such post, or hidden from this viewer) or Forbidden (a block between them);
    a muted author is left to `hydrate`."""
    if row is None or (row["hidden"] and row["author_id"] != viewer_id):
        raise NotFound("no such post")
    if row["blocked"]:
        raise Forbidden("you cannot see posts of this account: one of you blocked the other")


async def get_post(ctx: Ctx, viewer_id: int, post_id: int) -> dict[str, Any]:
    _check_row(await fetchrow_fresh(ctx, VISIBLE_SQL + " FROM posts p WHERE p.id = $1",
                                    post_id, viewer_id), viewer_id)
    docs = await hydrate(ctx, viewer_id, [post_id])
    if not docs:
        raise NotFound("no such post (muted account)")
    return docs[0]


# the check of VISIBLE_SQL, with the post's ancestors (its parent last, up to 50 up) and a page
# of its direct replies ($3: after this id, $4: at most) found in the same query
THREAD_SQL = VISIBLE_SQL + """,
       ARRAY(WITH RECURSIVE up(id, reply_to_id, depth) AS (
                 SELECT p.id, p.reply_to_id, 0
               UNION ALL
                 SELECT q.id, q.reply_to_id, up.depth + 1 FROM posts q
                 JOIN up ON q.id = up.reply_to_id WHERE up.depth < 50)
             SELECT id FROM up WHERE depth > 0 ORDER BY depth DESC) AS ancestors,
       ARRAY(SELECT r.id FROM posts r WHERE r.reply_to_id = $1 AND NOT r.hidden AND r.id > $3
             ORDER BY r.id LIMIT $4) AS replies
FROM posts p WHERE p.id = $1
"""


async def thread(ctx: Ctx, viewer_id: int, post_id: int, limit: int = 50,
                 cursor: str | None = None) -> dict[str, Any]:
    """The post, its ancestors (oldest first) and a page of its direct replies (oldest first,
    `limit`, from `cursor` on: the replies_next_cursor of the page before): the post checked,
    its ancestors walked up and the page found in one query, every document hydrated in one
    more."""
    limit = check_limit(ctx, limit)
    after = parse_id(cursor) if cursor else 0
    if after is None:
        raise Invalid("cursor: pass back the replies_next_cursor of the previous page",
                      field="cursor")
    row = await fetchrow_fresh(ctx, THREAD_SQL, post_id, viewer_id, after, limit + 1)
    _check_row(row, viewer_id)
    ancestors, replies = list(row["ancestors"]), list(row["replies"])
    more = len(replies) > limit
    replies = replies[:limit]
    docs = {d["id"]: d for d in await hydrate(ctx, viewer_id, [post_id, *ancestors, *replies])}
    post = docs.get(str(post_id))
    if post is None:
        raise NotFound("no such post (muted account)")
    return {"post": post,
            "ancestors": [docs[str(i)] for i in ancestors if str(i) in docs],
            "replies": [docs[str(i)] for i in replies if str(i) in docs],
            "replies_next_cursor": str(replies[-1]) if more else None}


# account $1 upvotes post $2 in one statement: the checks (account suspended? post hidden? a
# block between them?), the upvote when they pass, and the post's counter, all in one snapshot;
# the count as it is after it. An upvote already there changes nothing (no row version).
UPVOTE_SQL = """
WITH chk AS (
  SELECT a.suspended_at, p.author_id, p.hidden,
         EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = p.author_id)
                 OR (blocker_id = p.author_id AND blocked_id = $1)) AS blocked
  FROM accounts a LEFT JOIN posts p ON p.id = $2 WHERE a.id = $1),
     ins AS (INSERT INTO upvotes (account_id, post_id)
             SELECT $1, $2 FROM chk WHERE suspended_at IS NULL AND author_id IS NOT NULL
                                      AND NOT hidden AND NOT blocked
             ON CONFLICT DO NOTHING RETURNING post_id),
     upd AS (UPDATE posts SET upvotes_count = upvotes_count + 1
             WHERE id IN (SELECT post_id FROM ins) RETURNING upvotes_count)
SELECT chk.suspended_at, chk.author_id, chk.hidden, chk.blocked,
       EXISTS (SELECT 1 FROM ins) AS added,
       coalesce((SELECT upvotes_count FROM upd),
                (SELECT upvotes_count FROM posts WHERE id = $2)) AS count
FROM chk
"""


async def upvote(ctx: Ctx, account_id: int, post_id: int) -> int:
    """Upvote (once: again is no change); the post's upvote count. One statement, checks
    included (were two round trips: the checks, then the write; before them seven in a
    transaction)."""
    try:
        row = await ctx.db.fetchrow(UPVOTE_SQL, account_id, post_id)
    except asyncpg.ForeignKeyViolationError:  # deleted while the statement ran
        raise NotFound("no such post") from None
    if row is None:
        raise NotFound("no such account")
    if row["suspended_at"] is not None:
        raise Suspended("your account is suspended: you can appeal the decisions against it")
    if row["author_id"] is None or row["hidden"] or row["count"] is None:
        raise NotFound("no such post")
    if row["blocked"]:
        raise Forbidden("you cannot upvote this account")
    if row["added"]:
        await emit_events(ctx, [("upvote", account_id, row["author_id"], post_id)])
    return int(row["count"])


async def remove_upvote(ctx: Ctx, account_id: int, post_id: int) -> int:
    async def write(conn: Any) -> Any:
        gone = await conn.fetchval(
            "DELETE FROM upvotes WHERE account_id = $1 AND post_id = $2 RETURNING true",
            account_id, post_id)
        count = await conn.fetchval(
            "UPDATE posts SET upvotes_count = upvotes_count - $2 WHERE id = $1"
            " RETURNING upvotes_count", post_id, 1 if gone else 0)
        return count

    count = await ctx.db.transaction(write)
    if count is None:
        raise NotFound("no such post")
    return int(count)
