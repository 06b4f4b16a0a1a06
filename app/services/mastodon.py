"""What the Mastodon client API reads beyond the native services: rows for its entities (one
query for a page of statuses, one for the accounts they name), pages by max_id / since_id /
min_id, markers, media descriptions, idempotent posting.

Visibility is the native one (posts.HYDRATE_FROM_TEMPLATE: deleted, hidden, blocked and muted
posts are left out); app.mastodon.entities renders the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from freehold.app.context import Ctx
from freehold.app.ids import MAX_ID
from freehold.app.services.accounts import ACCOUNT_COLS
from freehold.app.services.errors import Invalid, NotFound
from freehold.app.services.posts import HYDRATE_FROM_TEMPLATE, UNSEEN_TEMPLATE

_POST = """{p}.id AS {x}id, {p}.author_id AS {x}author_id, {p}.body AS {x}body,
       {p}.reply_to_id AS {x}reply_to_id, {p}.media AS {x}media,
       {p}.upvotes_count AS {x}upvotes, {p}.replies_count AS {x}replies,
       {p}.echoes_count AS {x}echoes,
       (SELECT r.author_id FROM posts r WHERE r.id = {p}.reply_to_id) AS {x}reply_author,
       EXISTS (SELECT 1 FROM upvotes u WHERE u.account_id = $2 AND u.post_id = {p}.id)
         AS {x}upvoted,
       EXISTS (SELECT 1 FROM posts x WHERE x.echo_of_id = {p}.id AND x.author_id = $2
               AND x.body = '') AS {x}echoed,
       ARRAY(SELECT m.account_id FROM mentions m WHERE m.post_id = {p}.id) AS {x}mention_ids"""
STATUS_SQL = UNSEEN_TEMPLATE.format(viewers="ARRAY[$2::bigint]") + f"""
SELECT {_POST.format(p="p", x="")}, p.echo_of_id, e.hidden AS e_hidden,
       {_POST.format(p="e", x="e_")}
""" + HYDRATE_FROM_TEMPLATE.format(source="posts p", viewer="$2") + \
    "  AND p.id = ANY($1::bigint[])\n"
ACCOUNTS_SQL = f"""SELECT {ACCOUNT_COLS},
  (SELECT max(p.id) FROM posts p WHERE p.author_id = a.id) AS last_post
FROM accounts a WHERE id = ANY($1::bigint[])"""
RELATIONSHIPS_SQL = """
SELECT o.id,
  EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = o.id) AS following,
  EXISTS (SELECT 1 FROM follows WHERE follower_id = o.id AND followee_id = $1) AS followed_by,
  EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = o.id) AS blocking,
  EXISTS (SELECT 1 FROM blocks WHERE blocker_id = o.id AND blocked_id = $1) AS blocked_by,
  EXISTS (SELECT 1 FROM mutes WHERE muter_id = $1 AND muted_id = o.id) AS muting
FROM unnest($2::bigint[]) AS o(id)"""


@dataclass(frozen=True)
class Page:
    """A page request: ids below max_id, above since_id / min_id (min_id: the page just above
    it, read oldest first), `limit` of them."""

    max_id: int | None = None
    since_id: int | None = None
    min_id: int | None = None
    limit: int = 20

    def where(self, col: str, first: int) -> tuple[str, list[Any]]:
        """(SQL condition and ORDER BY … LIMIT on `col`, its arguments from $first on)."""
        lo = max(self.since_id or 0, self.min_id or 0)
        cond = (f"{col} < coalesce(${first}::bigint, {MAX_ID}) AND {col} > ${first + 1}"
                f" ORDER BY {col} {'ASC' if self.min_id else 'DESC'} LIMIT ${first + 2}")
        return cond, [self.max_id, lo, self.limit]

    def order(self, ids: list[int]) -> list[int]:
        """Newest first, whichever way the query read them."""
        return sorted(ids, reverse=True) if self.min_id else ids


async def statuses(ctx: Ctx, viewer_id: int, ids: list[int], pool: Any = None
                   ) -> dict[int, asyncpg.Record]:
    """The visible posts of `ids` with what a Status needs, by id."""
    if not ids:
        return {}
    rows = await (pool or ctx.ro).fetch(STATUS_SQL, ids, viewer_id)
    return {r["id"]: r for r in rows}


async def accounts_by_id(ctx: Ctx, ids: set[int] | list[int], pool: Any = None
                         ) -> dict[int, asyncpg.Record]:
    if not ids:
        return {}
    rows = await (pool or ctx.ro).fetch(ACCOUNTS_SQL, list(ids))
    return {r["id"]: r for r in rows}


async def account(ctx: Ctx, account_id: int, pool: Any = None) -> asyncpg.Record:
    row = (await accounts_by_id(ctx, [account_id], pool or ctx.db)).get(account_id)
    if row is None:
        raise NotFound("Record not found")
    return row


async def relationships(ctx: Ctx, viewer_id: int, ids: list[int]) -> list[asyncpg.Record]:
    return list(await ctx.db.fetch(RELATIONSHIPS_SQL, viewer_id, ids))


async def account_status_ids(ctx: Ctx, account_id: int, page: Page, *, exclude_replies: bool,
                             exclude_reblogs: bool, only_media: bool) -> list[int]:
    cond, args = page.where("id", 2)
    extra = (" AND reply_to_id IS NULL" if exclude_replies else "") + \
        (" AND echo_of_id IS NULL" if exclude_reblogs else "") + \
        (" AND media <> '[]'::jsonb" if only_media else "")
    rows = await ctx.ro.fetch(
        f"SELECT id FROM posts WHERE author_id = $1 AND NOT hidden{extra} AND {cond}",
        account_id, *args)
    return page.order([r["id"] for r in rows])


async def public_ids(ctx: Ctx, page: Page, only_media: bool = False) -> list[int]:
    """The network's newest posts (replies and echoes left out, as Mastodon's public feed)."""
    cond, args = page.where("id", 1)
    media = " AND media <> '[]'::jsonb" if only_media else ""
    rows = await ctx.ro.fetch(
        "SELECT id FROM posts WHERE NOT hidden AND reply_to_id IS NULL AND echo_of_id IS NULL"
        f"{media} AND {cond}", *args)
    return page.order([r["id"] for r in rows])


async def tag_ids(ctx: Ctx, tag: str, page: Page) -> list[int]:
    cond, args = page.where("post_id", 2)
    rows = await ctx.ro.fetch(f"SELECT post_id FROM post_tags WHERE tag = $1 AND {cond}",
                              tag.lstrip("#").lower()[:64], *args)
    return page.order([r["post_id"] for r in rows])


async def follow_ids(ctx: Ctx, account_id: int, which: str, page: Page) -> list[int]:
    mine, other = (("followee_id", "follower_id") if which == "followers"
                   else ("follower_id", "followee_id"))
    cond, args = page.where(other, 2)
    rows = await ctx.ro.fetch(f"SELECT {other} AS id FROM follows WHERE {mine} = $1 AND {cond}",
                              account_id, *args)
    return page.order([r["id"] for r in rows])


async def blocked_ids(ctx: Ctx, account_id: int, table: str, page: Page) -> list[int]:
    me, other = ("blocker_id", "blocked_id") if table == "blocks" else ("muter_id", "muted_id")
    cond, args = page.where(other, 2)
    rows = await ctx.db.fetch(f"SELECT {other} AS id FROM {table} WHERE {me} = $1 AND {cond}",
                              account_id, *args)
    return page.order([r["id"] for r in rows])


async def favourited_by(ctx: Ctx, post_id: int, page: Page) -> list[int]:
    cond, args = page.where("account_id", 2)
    rows = await ctx.ro.fetch(f"SELECT account_id FROM upvotes WHERE post_id = $1 AND {cond}",
                              post_id, *args)
    return page.order([r["account_id"] for r in rows])


async def reblogged_by(ctx: Ctx, post_id: int, page: Page) -> list[int]:
    cond, args = page.where("author_id", 2)
    rows = await ctx.ro.fetch(
        "SELECT DISTINCT author_id FROM posts WHERE echo_of_id = $1 AND body = '' AND"
        f" {cond.split(' ORDER BY')[0]} ORDER BY author_id"
        f" {'ASC' if page.min_id else 'DESC'} LIMIT $4", post_id, *args)
    return page.order([r["author_id"] for r in rows])


async def favourite_ids(ctx: Ctx, account_id: int, page: Page) -> list[int]:
    cond, args = page.where("post_id", 2)
    rows = await ctx.db.fetch(f"SELECT post_id FROM upvotes WHERE account_id = $1 AND {cond}",
                              account_id, *args)
    return page.order([r["post_id"] for r in rows])


async def plain_echo(ctx: Ctx, account_id: int, post_id: int) -> int | None:
    """The id of this account's plain echo (reblog) of a post, if any."""
    v = await ctx.db.fetchval("SELECT id FROM posts WHERE author_id = $1 AND echo_of_id = $2"
                              " AND body = '' LIMIT 1", account_id, post_id)
    return int(v) if v is not None else None


async def echo_target(ctx: Ctx, post_id: int) -> int | None:
    """The post a plain echo echoes (None: not a plain echo)."""
    v = await ctx.ro.fetchval("SELECT echo_of_id FROM posts WHERE id = $1 AND body = ''",
                              post_id)
    return int(v) if v is not None else None


NOTIFICATION_KINDS = {"mention": ("mention", "reply"), "reblog": ("echo",),
                      "favourite": ("upvote",), "follow": ("follow",)}


def kinds_for(types: list[str] | None, exclude: list[str] | None) -> list[str]:
    """The native notification kinds Mastodon `types[]` / `exclude_types[]` select."""
    chosen = set(types) if types else set(NOTIFICATION_KINDS)
    chosen -= set(exclude or ())
    return [k for t in sorted(chosen) for k in NOTIFICATION_KINDS.get(t, ())]


async def notifications(ctx: Ctx, account_id: int, page: Page, kinds: list[str],
                        from_account: int | None = None) -> list[asyncpg.Record]:
    cond, args = page.where("n.id", 4)
    rows = await ctx.db.fetch(
        "SELECT n.id, n.kind, n.actor_id, n.post_id, coalesce(p.echo_of_id, n.post_id)"
        " AS status_id FROM notifications n LEFT JOIN posts p ON p.id = n.post_id"
        " AND n.kind = 'echo' AND p.body = ''"
        " WHERE n.account_id = $1 AND n.kind = ANY($2::text[])"
        # a reply that mentions too is one Mastodon mention, not two
        " AND NOT (n.kind = 'mention' AND EXISTS (SELECT 1 FROM notifications r"
        "   WHERE r.account_id = n.account_id AND r.kind = 'reply'"
        "   AND r.actor_id = n.actor_id AND r.post_id = n.post_id))"
        f" AND ($3::bigint IS NULL OR n.actor_id = $3) AND {cond}",
        account_id, kinds, from_account, *args)
    return sorted(rows, key=lambda r: r["id"], reverse=True)


async def notification(ctx: Ctx, account_id: int, notification_id: int) -> asyncpg.Record:
    row = await ctx.db.fetchrow(
        "SELECT n.id, n.kind, n.actor_id, n.post_id, coalesce(p.echo_of_id, n.post_id)"
        " AS status_id FROM notifications n LEFT JOIN posts p ON p.id = n.post_id"
        " AND n.kind = 'echo' AND p.body = '' WHERE n.account_id = $1 AND n.id = $2",
        account_id, notification_id)
    if row is None:
        raise NotFound("Record not found")
    return row


async def dismiss(ctx: Ctx, account_id: int, notification_id: int | None) -> None:
    """Delete one notification (with the mention a reply's notification stands for), or all
    (None)."""
    await ctx.db.execute(
        "DELETE FROM notifications WHERE account_id = $1 AND ($2::bigint IS NULL OR id = $2"
        " OR (kind = 'mention' AND (actor_id, post_id) IN (SELECT actor_id, post_id"
        "     FROM notifications WHERE id = $2 AND account_id = $1 AND kind = 'reply')))",
        account_id, notification_id)


async def markers(ctx: Ctx, account_id: int, timelines: list[str]) -> list[asyncpg.Record]:
    return list(await ctx.db.fetch(
        "SELECT timeline, last_read_id, version, updated_at FROM markers"
        " WHERE account_id = $1 AND timeline = ANY($2::text[])", account_id, timelines))


async def set_marker(ctx: Ctx, account_id: int, timeline: str, last_read_id: int
                     ) -> asyncpg.Record:
    if timeline not in ("home", "notifications"):
        raise Invalid("timeline: home or notifications", field="timeline")
    row = await ctx.db.fetchrow(
        "INSERT INTO markers (account_id, timeline, last_read_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (account_id, timeline) DO UPDATE SET last_read_id = $3,"
        " version = markers.version + 1, updated_at = now()"
        " RETURNING timeline, last_read_id, version, updated_at",
        account_id, timeline, last_read_id)
    assert row is not None
    return row


async def media(ctx: Ctx, account_id: int, media_id: int) -> asyncpg.Record:
    row = await ctx.db.fetchrow(
        "SELECT id, s3_key, content_type, description, post_id FROM media"
        " WHERE id = $1 AND owner_id = $2", media_id, account_id)
    if row is None:
        raise NotFound("Record not found")
    return row


async def describe_media(ctx: Ctx, account_id: int, media_id: int, description: str | None
                         ) -> asyncpg.Record:
    """Set an image's description (alt text) while it is not posted yet (at most 1,500
    characters, as Mastodon)."""
    if description is not None and (not isinstance(description, str) or
                                    len(description) > 1500 or "\x00" in description):
        raise Invalid("description: at most 1500 characters", field="description")
    row = await media(ctx, account_id, media_id)
    if description is not None and row["post_id"] is None:
        await ctx.db.execute("UPDATE media SET description = $2 WHERE id = $1", media_id,
                             description.strip() or None)
        row = await media(ctx, account_id, media_id)
    return row


async def search_status_ids(ctx: Ctx, q: str, limit: int) -> list[int]:
    """Statuses by the search this app has: a post's URL or id, or a hashtag's newest posts."""
    q = q.strip()
    tail = q.rstrip("/").rsplit("/", 1)[-1]
    if tail.isdigit() and len(tail) <= 19:
        found = await ctx.ro.fetchval("SELECT id FROM posts WHERE id = $1 AND NOT hidden",
                                      int(tail))
        return [int(found)] if found else []
    if q.startswith("#") and len(q) > 1:
        return await tag_ids(ctx, q, Page(limit=limit))
    return []


ANCESTORS_SQL = """
WITH RECURSIVE up(id, reply_to_id, depth) AS (
    SELECT id, reply_to_id, 0 FROM posts WHERE id = $1
  UNION ALL
    SELECT p.id, p.reply_to_id, up.depth + 1 FROM posts p JOIN up ON p.id = up.reply_to_id
    WHERE up.depth < 50)
SELECT id FROM up WHERE depth > 0 ORDER BY depth DESC
"""
DESCENDANTS_SQL = """
WITH RECURSIVE down(id, depth) AS (
    SELECT id, 1 FROM posts WHERE reply_to_id = $1 AND NOT hidden
  UNION ALL
    SELECT p.id, down.depth + 1 FROM posts p JOIN down ON p.reply_to_id = down.id
    WHERE down.depth < 50 AND NOT p.hidden)
SELECT id FROM down ORDER BY id LIMIT $2
"""


async def context_ids(ctx: Ctx, post_id: int, most: int = 400) -> tuple[list[int], list[int]]:
    """(ancestors oldest first, descendants in time order: at most `most`, 50 levels deep)."""
    up = [r["id"] for r in await ctx.ro.fetch(ANCESTORS_SQL, post_id)]
    down = [r["id"] for r in await ctx.ro.fetch(DESCENDANTS_SQL, post_id, most)]
    return up, down
