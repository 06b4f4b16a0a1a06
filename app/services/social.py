"""Follow / unfollow, followers and following lists, block and mute."""

from __future__ import annotations

from typing import Any

from freehold.app.context import Ctx
from freehold.app.ids import MAX_ID
from freehold.app.readwrite import fetchrow_fresh
from freehold.app.redis_client import BIG_EPOCH, feed_big_key, feed_key
from freehold.app.services.accounts import ACCOUNT_COLS, account_json
from freehold.app.services.errors import Forbidden, Invalid, NotFound
from freehold.app.services.posts import check_can_post, check_limit, emit_events


async def _invalidate_feed(ctx: Ctx, account_id: int) -> None:
    """Drop the cached home feed: the next read rebuilds it from PostgreSQL."""
    await ctx.redis.delete(feed_key(account_id), feed_big_key(account_id))


async def _crossed(ctx: Ctx, followee_id: int, before: int, after: int) -> None:
    t = ctx.settings.big_account_followers
    if (before < t) != (after < t):
        # the account changed between fan-out (small) and read-time merge (big)
        await ctx.redis.incr(BIG_EPOCH)
        if after < t:
            # posts written while big were never pushed: rebuild its followers' feeds
            async with ctx.db.acquire() as conn, conn.transaction():
                cur = conn.cursor("SELECT follower_id FROM follows WHERE followee_id = $1",
                                  followee_id, prefetch=1000)
                batch: list[str] = []
                async for r in cur:
                    batch.append(feed_key(r["follower_id"]))
                    if len(batch) >= 1000:
                        await _unlink(ctx, batch)
                        batch = []
                await _unlink(ctx, batch)


async def _unlink(ctx: Ctx, keys: list[str]) -> None:
    if keys:
        pipe = ctx.redis.pipeline(transaction=False)
        for k in keys:
            pipe.unlink(k)
        await pipe.execute()


async def follow(ctx: Ctx, follower_id: int, followee_id: int) -> bool:
    """True when a new follow was made (False: it already existed)."""
    if follower_id == followee_id:
        raise Invalid("you cannot follow yourself", field="account_id")

    async def write(conn: Any) -> tuple[bool, int, int]:
        """(made, followers before, after): a database unit (app.dbretry)."""
        await check_can_post(conn, follower_id)
        exists = await conn.fetchval("SELECT true FROM accounts WHERE id = $1", followee_id)
        if not exists:
            raise NotFound("no such account")
        if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2)"
                " OR (blocker_id = $2 AND blocked_id = $1))", follower_id, followee_id):
            raise Forbidden("you cannot follow this account: one of you blocked the other")
        made = await conn.fetchval(
            "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true", follower_id, followee_id)
        if not made:
            return False, 0, 0
        after = await conn.fetchval(
            "UPDATE accounts SET followers_count = followers_count + 1 WHERE id = $1"
            " RETURNING followers_count", followee_id)
        await conn.execute(
            "UPDATE accounts SET following_count = following_count + 1 WHERE id = $1",
            follower_id)
        return True, after - 1, after

    made, before, after = await ctx.db.transaction(write)
    if made:
        await _invalidate_feed(ctx, follower_id)
        await _crossed(ctx, followee_id, before, after)
        await emit_events(ctx, [("follow", follower_id, followee_id, None)])
    return made


async def unfollow(ctx: Ctx, follower_id: int, followee_id: int) -> bool:
    gone = await ctx.db.transaction(lambda conn: _unfollow_tx(conn, follower_id, followee_id))
    if gone is not None:
        await _invalidate_feed(ctx, follower_id)
        await _crossed(ctx, followee_id, gone + 1, gone)
    return gone is not None


async def _unfollow_tx(conn: Any, follower_id: int, followee_id: int) -> int | None:
    """Remove a follow inside a transaction; the followee's new followers count, or None."""
    gone = await conn.fetchval(
        "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING true",
        follower_id, followee_id)
    if not gone:
        return None
    await conn.execute("UPDATE accounts SET following_count = following_count - 1 WHERE id = $1",
                       follower_id)
    return int(await conn.fetchval(
        "UPDATE accounts SET followers_count = followers_count - 1 WHERE id = $1"
        " RETURNING followers_count", followee_id))


async def block(ctx: Ctx, blocker_id: int, blocked_id: int) -> None:
    """Block: both follows between the two accounts go, neither sees the other's posts."""
    if blocker_id == blocked_id:
        raise Invalid("you cannot block yourself", field="account_id")

    async def write(conn: Any) -> list[tuple[int, int]]:
        """(followee, followers left) of each follow removed: a database unit (app.dbretry)."""
        if not await conn.fetchval("SELECT true FROM accounts WHERE id = $1", blocked_id):
            raise NotFound("no such account")
        await conn.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)"
                           " ON CONFLICT DO NOTHING", blocker_id, blocked_id)
        crossed = []
        for a, b in ((blocker_id, blocked_id), (blocked_id, blocker_id)):
            n = await _unfollow_tx(conn, a, b)
            if n is not None:
                crossed.append((b, n))
        return crossed

    crossed = await ctx.db.transaction(write)
    await _invalidate_feed(ctx, blocker_id)
    await _invalidate_feed(ctx, blocked_id)
    for followee, n in crossed:
        await _crossed(ctx, followee, n + 1, n)


async def unblock(ctx: Ctx, blocker_id: int, blocked_id: int) -> None:
    await ctx.db.execute("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
                         blocker_id, blocked_id)
    await _invalidate_feed(ctx, blocker_id)


async def mute(ctx: Ctx, muter_id: int, muted_id: int) -> None:
    if muter_id == muted_id:
        raise Invalid("you cannot mute yourself", field="account_id")
    if not await ctx.db.fetchval("SELECT true FROM accounts WHERE id = $1", muted_id):
        raise NotFound("no such account")
    await ctx.db.execute("INSERT INTO mutes (muter_id, muted_id) VALUES ($1, $2)"
                         " ON CONFLICT DO NOTHING", muter_id, muted_id)


async def unmute(ctx: Ctx, muter_id: int, muted_id: int) -> None:
    await ctx.db.execute("DELETE FROM mutes WHERE muter_id = $1 AND muted_id = $2",
                         muter_id, muted_id)


# the viewer $1's relationship to the account $2, as columns a query can add to its own
RELATIONSHIP_COLS = (
    "EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2) AS rel_a,"
    " EXISTS (SELECT 1 FROM follows WHERE follower_id = $2 AND followee_id = $1) AS rel_b,"
    " EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2) AS rel_c,"
    " EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $1) AS rel_d,"
    " EXISTS (SELECT 1 FROM mutes WHERE muter_id = $1 AND muted_id = $2) AS rel_e")


def relationship_of(r: Any) -> dict[str, bool]:
    """The relationship from a row with RELATIONSHIP_COLS."""
    return {"following": r["rel_a"], "followed_by": r["rel_b"], "blocking": r["rel_c"],
            "blocked_by": r["rel_d"], "muting": r["rel_e"]}


async def relationship(ctx: Ctx, viewer_id: int, other_id: int) -> dict[str, bool]:
    return relationship_of(await ctx.ro.fetchrow(f"SELECT {RELATIONSHIP_COLS}", viewer_id,
                                                 other_id))


async def profile(ctx: Ctx, viewer_id: int, account_id: int) -> tuple[Any, dict[str, bool]]:
    """(the account's row, the viewer's relationship to it) in one query (were two); NotFound
    when there is no such account."""
    cols = ", ".join(f"a.{c.strip()}" for c in ACCOUNT_COLS.split(","))
    row = await fetchrow_fresh(
        ctx, f"SELECT {cols}, {RELATIONSHIP_COLS} FROM accounts a WHERE a.id = $2",
        viewer_id, account_id)
    if row is None:
        raise NotFound("no such account")
    return row, relationship_of(row)


async def list_follows(ctx: Ctx, viewer_id: int, account_id: int, which: str, *,
                       limit: int = 40, before: int | None = None
                       ) -> tuple[list[dict[str, Any]], str | None]:
    """Followers or following of an account, newest follow first (cursor = account id)."""
    if which not in ("followers", "following"):
        raise Invalid("which: followers or following")
    limit = check_limit(ctx, limit)
    if await ctx.ro.fetchval(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2)",
            account_id, viewer_id):
        raise Forbidden("this account blocked you")
    if not await ctx.ro.fetchval("SELECT true FROM accounts WHERE id = $1", account_id):
        raise NotFound("no such account")
    mine, other = (("followee_id", "follower_id") if which == "followers"
                   else ("follower_id", "followee_id"))
    cols = ", ".join(f"a.{c.strip()}" for c in ACCOUNT_COLS.split(","))
    rows = await ctx.ro.fetch(
        f"SELECT {cols} FROM follows f JOIN accounts a ON a.id = f.{other}"
        f" WHERE f.{mine} = $1 AND f.{other} < coalesce($2::bigint, {MAX_ID})"
        f" ORDER BY f.{other} DESC LIMIT $3", account_id, before, limit)
    nxt = str(rows[-1]["id"]) if len(rows) == limit else None
    return [account_json(ctx, r) for r in rows], nxt
