"""Notifications (follow, reply, mention, echo, upvote) with an unread count.

Services queue events on a Redis stream; the `notify` worker writes them here.
"""

from __future__ import annotations

from typing import Any

import orjson

from freehold.app.context import Ctx
from freehold.app.ids import MAX_ID, id_datetime, new_id
from freehold.app.services.feed import parse_cursor
from freehold.app.services.postjson import hydrate_json, item_id
from freehold.app.services.posts import check_limit, hydrate

KINDS = ("follow", "reply", "mention", "echo", "upvote")


async def store(conn: Any, events: list[tuple[str, int, int, int | None]]) -> int:
    """Insert notifications (kind, actor, recipient, post); skips blocked and muted actors."""
    rows = [(new_id(), kind, actor, target, post or None)
            for kind, actor, target, post in events if kind in KINDS and actor != target]
    if not rows:
        return 0
    result = await conn.fetch(
        "INSERT INTO notifications (id, kind, actor_id, account_id, post_id)"
        " SELECT e.id, e.kind, e.actor, e.target, e.post"
        " FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])"
        "   AS e(id, kind, actor, target, post)"
        " WHERE EXISTS (SELECT 1 FROM accounts WHERE id = e.actor)"
        "   AND EXISTS (SELECT 1 FROM accounts WHERE id = e.target)"
        "   AND (e.post IS NULL OR EXISTS (SELECT 1 FROM posts WHERE id = e.post))"
        "   AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = e.target"
        "                   AND blocked_id = e.actor)"
        "   AND NOT EXISTS (SELECT 1 FROM mutes WHERE muter_id = e.target AND muted_id = e.actor)"
        " ON CONFLICT DO NOTHING RETURNING id",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
        [r[3] for r in rows], [r[4] for r in rows])
    return len(result)


async def unread_count(ctx: Ctx, account_id: int) -> int:
    return int(await ctx.db.fetchval(
        "SELECT count(*) FROM notifications WHERE account_id = $1 AND NOT read", account_id))


async def _rows(ctx: Ctx, account_id: int, limit: int, cursor: str | None) -> list[Any]:
    max_id, _ = parse_cursor(cursor)
    return await ctx.db.fetch(
        "SELECT n.id, n.kind, n.post_id, n.read, a.id AS actor_id, a.username,"
        " a.display_name, a.is_verified FROM notifications n JOIN accounts a ON a.id = n.actor_id"
        f" WHERE n.account_id = $1 AND n.id < coalesce($2::bigint, {MAX_ID})"
        " ORDER BY n.id DESC LIMIT $3", account_id, max_id, check_limit(ctx, limit))


def _note(r: Any, post: Any) -> dict[str, Any]:
    return {"id": str(r["id"]), "kind": r["kind"], "read": r["read"],
            "created_at": id_datetime(r["id"]).isoformat(),
            "actor": {"id": str(r["actor_id"]), "username": r["username"],
                      "display_name": r["display_name"] or r["username"],
                      "verified": r["is_verified"]},
            "post": post}


def _next(rows: list[Any], limit: int) -> str | None:
    return str(rows[-1]["id"]) if len(rows) == limit else None


async def listing(ctx: Ctx, account_id: int, *, limit: int = 40, cursor: str | None = None
                  ) -> tuple[list[dict[str, Any]], str | None]:
    rows = await _rows(ctx, account_id, limit, cursor)
    posts = {int(p["id"]): p for p in await hydrate(
        ctx, account_id, [r["post_id"] for r in rows if r["post_id"]], pool=ctx.db)}
    return [_note(r, posts.get(r["post_id"]) if r["post_id"] else None) for r in rows], \
        _next(rows, limit)


async def listing_json(ctx: Ctx, account_id: int, *, limit: int = 40,
                       cursor: str | None = None) -> bytes:
    """`listing` as the API sends it: the posts rendered by app.services.postjson (kept items,
    concurrent pages in one query), from the primary as `listing` reads them."""
    rows = await _rows(ctx, account_id, limit, cursor)
    pids = list(dict.fromkeys(r["post_id"] for r in rows if r["post_id"]))
    posts = {item_id(x): orjson.Fragment(x)
             for x in await hydrate_json(ctx, account_id, pids, primary=True)}
    return orjson.dumps({"items": [_note(r, posts.get(r["post_id"]) if r["post_id"] else None)
                                   for r in rows], "next_cursor": _next(rows, limit)})


async def mark_read(ctx: Ctx, account_id: int, up_to: int | None = None) -> int:
    """Mark notifications read (all, or those with id <= up_to); returns how many changed."""
    r = await ctx.db.execute(
        "UPDATE notifications SET read = true WHERE account_id = $1 AND NOT read"
        f" AND id <= coalesce($2::bigint, {MAX_ID})", account_id, up_to)
    return int(r.split()[-1])
