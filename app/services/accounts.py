"""Accounts: sign-up, profiles, avatars, admin flags, hard deletion."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from freehold.app.context import Ctx
from freehold.app.ids import id_datetime, new_id
from freehold.app.readwrite import fetchrow_fresh
from freehold.app.redis_client import author_key, feed_big_key, feed_key
from freehold.app.services import audit, ratelimit, signup_proof
from freehold.app.services.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from freehold.app.services.media import new_media_key, sniff_image
from freehold.app.services.passwords import hash_password, needs_rehash, password_matches

USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{3,30}$")
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]{2,}$")
RESERVED = {"admin", "api", "about", "login", "logout", "signup", "settings", "media", "static",
            "discover", "search", "notifications", "moderation", "healthz", "readyz", "metrics",
            "freehold", "root", "support", "help", "home", "me"}
# usernames of load-test accounts (made only by app.seed, marked accounts.loadtest): sign-up
# refuses them, so a name under it is never a person's
LOADTEST_PREFIX = "loadtest_"

ACCOUNT_COLS = ("id, username, display_name, bio, avatar_key, is_verified, is_admin, is_juror, "
                "strikes, suspended_at, followers_count, following_count, posts_count, "
                "created_at")


def check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise Invalid("username: 3 to 30 letters, digits or underscores", field="username")
    name = username.lower()
    if name in RESERVED:
        raise Invalid(f"username {name!r} is reserved: choose another", field="username")
    if name.startswith(LOADTEST_PREFIX):
        raise Invalid(f"username: names starting with {LOADTEST_PREFIX!r} are reserved for load"
                      " tests: choose another", field="username")
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or not 8 <= len(password) <= 256:
        raise Invalid("password: 8 to 256 characters", field="password")
    return password


def media_url(ctx: Ctx, key: str | None) -> str | None:
    return f"{ctx.settings.media_url_prefix}{key}" if key else None


def account_json(ctx: Ctx, row: asyncpg.Record | dict[str, Any], *, private: bool = False
                 ) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": str(row["id"]),
        "username": row["username"],
        "display_name": row["display_name"] or row["username"],
        "bio": row["bio"],
        "avatar_url": media_url(ctx, row["avatar_key"]),
        "verified": row["is_verified"],
        "juror": row["is_juror"],
        "admin": row["is_admin"],
        "suspended": row["suspended_at"] is not None,
        "followers_count": row["followers_count"],
        "following_count": row["following_count"],
        "posts_count": row["posts_count"],
        "created_at": row["created_at"].isoformat(),
    }
    if private:
        doc["strikes"] = row["strikes"]
    return doc


async def signup(ctx: Ctx, username: str, email: str, password: str, *, ip: str = "",
                 display_name: str = "", proof: signup_proof.Proof | None = None
                 ) -> asyncpg.Record:
    """A new account. Past the free allowance of its address a sign-up needs a proof of work
    (app.services.signup_proof); the per-address rate limit stays as a backstop."""
    s = ctx.settings
    where = signup_proof.bucket(ip, s.signup_ipv6_prefix)
    await ratelimit.hit(ctx.redis, "signup", where, s.rl_signup_per_ip, s.rl_signup_window)
    name = check_username(username)
    if not isinstance(email, str) or len(email) > 254 or not EMAIL_RE.match(email):
        raise Invalid("e-mail: give an address like name@example.org", field="email")
    check_password(password)
    display = check_display_name(display_name or name)
    spent = await signup_proof.check(ctx, ip, proof)  # before the costly password hash
    phash = await hash_password(password)
    aid = new_id()
    try:
        row = await ctx.db.fetchrow(
            f"INSERT INTO accounts (id, username, email, password_hash, display_name, is_admin)"
            f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ACCOUNT_COLS}",
            aid, name, email.strip(), phash, display, name in s.admin_usernames)
    except asyncpg.UniqueViolationError as exc:
        await signup_proof.give_back(ctx, spent)  # no account made: the proof stays good
        which = "username" if "username" in str(exc.constraint_name) else "email"
        raise Conflict(f"{which} already taken: choose another", field=which) from exc
    assert row is not None
    await signup_proof.counted(ctx, where)
    return row


def check_display_name(display: str) -> str:
    if not isinstance(display, str):
        raise Invalid("display name must be text", field="display_name")
    display = " ".join(display.split())
    if len(display) > 50 or "\x00" in display:
        raise Invalid("display name: at most 50 characters", field="display_name")
    return display


async def find_login(ctx: Ctx, login: str) -> asyncpg.Record | None:
    """The account (id, password_hash) a log-in name means: username (a leading @ or not, any
    case) or e-mail; None when there is none."""
    if not isinstance(login, str) or len(login) > 254 or "\x00" in login:
        return None  # PostgreSQL text cannot hold NUL: no account has it
    return await ctx.db.fetchrow(
        "SELECT id, password_hash FROM accounts WHERE username = lower($1) "
        "OR lower(email) = lower($1) LIMIT 1", login.strip().lstrip("@"))


async def verify_password(ctx: Ctx, login: str, password: str) -> asyncpg.Record:
    """The account for a username or e-mail and password; Unauthorized when they do not match."""
    return await match_password(ctx, await find_login(ctx, login), password)


async def match_password(ctx: Ctx, row: asyncpg.Record | None, password: str) -> asyncpg.Record:
    """`row` (from find_login) when `password` is its; Unauthorized otherwise. A hash made
    with older parameters is replaced by one with today's (passwords.PARAMETERS)."""
    if not isinstance(password, str):
        raise Unauthorized("wrong username or password")
    # no such account: a check of the same cost all the same (no probing by timing)
    if not await password_matches(row["password_hash"] if row else None, password[:256]):
        raise Unauthorized("wrong username or password")
    assert row is not None
    if needs_rehash(row["password_hash"]):
        # only if unchanged since it was read: a password change meanwhile wins
        await ctx.db.execute(
            "UPDATE accounts SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
            row["id"], await hash_password(password[:256]), row["password_hash"])
    return row


async def get(ctx: Ctx, account_id: int, *, conn: Any = None) -> asyncpg.Record:
    sql = f"SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1"
    row = await (conn.fetchrow(sql, account_id) if conn is not None
                 else fetchrow_fresh(ctx, sql, account_id))
    if row is None:
        raise NotFound("no such account")
    return row


async def get_by_username(ctx: Ctx, username: str) -> asyncpg.Record:
    if not isinstance(username, str) or not USERNAME_RE.match(username.lstrip("@")):
        raise NotFound("no such account")
    row = await fetchrow_fresh(
        ctx, f"SELECT {ACCOUNT_COLS} FROM accounts WHERE username = lower($1)",
        username.lstrip("@"))
    if row is None:
        raise NotFound("no such account")
    return row


async def update_profile(ctx: Ctx, account_id: int, *, display_name: str | None = None,
                         bio: str | None = None) -> asyncpg.Record:
    if display_name is not None:
        display_name = check_display_name(display_name)
    if bio is not None:
        if not isinstance(bio, str) or len(bio) > 500 or "\x00" in bio:
            raise Invalid("bio: at most 500 characters", field="bio")
        bio = bio.strip()
    row = await ctx.db.fetchrow(
        f"UPDATE accounts SET display_name = coalesce($2, display_name), bio = coalesce($3, bio)"
        f" WHERE id = $1 RETURNING {ACCOUNT_COLS}", account_id, display_name, bio)
    if row is None:
        raise NotFound("no such account")
    return row


async def set_avatar(ctx: Ctx, account_id: int, data: bytes) -> asyncpg.Record:
    if ctx.media is None:
        raise Invalid("media storage is not configured on this server", field="file")
    if len(data) > ctx.settings.media_max_bytes:
        raise Invalid(f"image larger than {ctx.settings.media_max_bytes} bytes", field="file")
    ctype, ext = sniff_image(data)
    _, key = new_media_key("avatars", ext)
    await ctx.media.put(key, data, ctype)
    old = await ctx.db.fetchval("SELECT avatar_key FROM accounts WHERE id = $1", account_id)
    row = await ctx.db.fetchrow(
        f"UPDATE accounts SET avatar_key = $2 WHERE id = $1 RETURNING {ACCOUNT_COLS}",
        account_id, key)
    if old:
        await ctx.media.delete([old])
    if row is None:
        raise NotFound("no such account")
    return row


async def delete_account(ctx: Ctx, account_id: int, password: str) -> None:
    """Delete the account and everything it wrote, for real: rows, media objects, caches."""
    row = await ctx.db.fetchrow("SELECT username FROM accounts WHERE id = $1", account_id)
    if row is None:
        raise NotFound("no such account")
    await verify_password(ctx, row["username"], password)
    await purge_account(ctx, account_id, actor_id=account_id)


async def purge_account(ctx: Ctx, account_id: int, *, actor_id: int | None) -> None:
    async def write(conn: asyncpg.Connection) -> tuple[list[str], list[bytes]]:
        purged = await purge_rows(conn, [account_id])
        await audit.log(conn, actor_id, "account.delete", "account", account_id, {})
        return purged

    keys, tokens = await ctx.db.transaction(write)
    pipe = ctx.redis.pipeline(transaction=False)
    for key in (feed_key(account_id), feed_big_key(account_id), author_key(account_id)):
        pipe.delete(key)
    for t in tokens:  # sessions' and OAuth tokens' (a digest is either, never both)
        pipe.delete(session_cache_key(t))  # one key a command: a cluster's slots differ
        pipe.delete(oauth_cache_key(t))
    await pipe.execute()
    ctx.big_heads.drop(account_id)
    if ctx.media is not None:
        await ctx.media.delete(keys)


async def purge_rows(conn: Any, ids: list[int]) -> tuple[list[str], list[bytes]]:
    """Delete the accounts `ids` and every row they wrote (cascades), in the caller's
    transaction, keeping the counters of the other accounts and posts right; returns the media
    keys (objects and avatars) and session and OAuth token hashes left for the caller to drop
    from the store and the caches."""
    keys = [r["s3_key"] for r in await conn.fetch(
        "SELECT s3_key FROM media WHERE owner_id = ANY($1)", ids)]
    keys += [r["avatar_key"] for r in await conn.fetch(
        "SELECT avatar_key FROM accounts WHERE id = ANY($1) AND avatar_key IS NOT NULL", ids)]
    tokens = [bytes(r["token_hash"]) for r in await conn.fetch(
        "SELECT token_hash FROM sessions WHERE account_id = ANY($1)"
        " UNION ALL SELECT token_hash FROM oauth_tokens WHERE account_id = ANY($1)", ids)]
    await conn.execute(
        "UPDATE accounts a SET followers_count = a.followers_count - c.n FROM"
        " (SELECT followee_id, count(*) AS n FROM follows WHERE follower_id = ANY($1)"
        "  GROUP BY followee_id) c WHERE a.id = c.followee_id AND a.id <> ALL($1)", ids)
    await conn.execute(
        "UPDATE accounts a SET following_count = a.following_count - c.n FROM"
        " (SELECT follower_id, count(*) AS n FROM follows WHERE followee_id = ANY($1)"
        "  GROUP BY follower_id) c WHERE a.id = c.follower_id AND a.id <> ALL($1)", ids)
    await conn.execute(
        "UPDATE posts p SET upvotes_count = p.upvotes_count - c.n FROM"
        " (SELECT post_id, count(*) AS n FROM upvotes WHERE account_id = ANY($1)"
        "  GROUP BY post_id) c WHERE p.id = c.post_id AND p.author_id <> ALL($1)", ids)
    await conn.execute(
        "UPDATE posts p SET replies_count = p.replies_count - c.n FROM"
        " (SELECT reply_to_id, count(*) AS n FROM posts WHERE author_id = ANY($1)"
        "  AND reply_to_id IS NOT NULL GROUP BY reply_to_id) c"
        " WHERE p.id = c.reply_to_id AND p.author_id <> ALL($1)", ids)
    await conn.execute(
        "UPDATE posts p SET echoes_count = p.echoes_count - c.n FROM"
        " (SELECT echo_of_id, count(*) AS n FROM posts WHERE author_id = ANY($1)"
        "  AND echo_of_id IS NOT NULL GROUP BY echo_of_id) c"
        " WHERE p.id = c.echo_of_id AND p.author_id <> ALL($1)", ids)
    await conn.execute("DELETE FROM accounts WHERE id = ANY($1)", ids)
    return keys, tokens


def session_cache_key(token_hash: bytes) -> str:
    return f"sess:{token_hash.hex()}"


def oauth_cache_key(token_hash: bytes) -> str:
    """Redis key caching an OAuth access token's grant (app.services.oauth)."""
    return f"oauth:tok:{token_hash.hex()}"


async def require_admin(ctx: Ctx, account_id: int) -> None:
    ok = await ctx.db.fetchval("SELECT is_admin FROM accounts WHERE id = $1", account_id)
    if not ok:
        raise Forbidden("admins only")


async def set_flag(ctx: Ctx, admin_id: int, target_id: int, flag: str, value: bool
                   ) -> asyncpg.Record:
    """An admin sets `verified`, `juror` or `admin` on an account (audited)."""
    column = {"verified": "is_verified", "juror": "is_juror", "admin": "is_admin"}.get(flag)
    if column is None:
        raise Invalid("flag: one of verified, juror, admin", field="flag")
    await require_admin(ctx, admin_id)
    async def write(conn: asyncpg.Connection) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"UPDATE accounts SET {column} = $2 WHERE id = $1 RETURNING {ACCOUNT_COLS}",
            target_id, value)
        if row is None:
            raise NotFound("no such account")
        await audit.log(conn, admin_id, f"account.{flag}", "account", target_id,
                        {"value": value})
        return row

    return await ctx.db.transaction(write)


def created_at(id_: int) -> str:
    return id_datetime(id_).isoformat()
