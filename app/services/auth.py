"""Sessions: opaque random tokens (cookie for the web, bearer for the API).

PostgreSQL keeps the sessions (sha256 of the token, never the token); Redis caches token → account
for an hour, so a request costs one Redis GET. A cache miss also records the account as active;
an account back after `inactive_days` gets its home feed rebuilt (fan-out skipped it meanwhile).

Each process also remembers which account a token hash belonged to (`session_hint`): the home
feed sends the session's Redis GET in its own pipeline and checks the answer there, so a feed
read costs one Redis round trip, not two. The hint never decides alone: a session logged out,
expired or evicted from Redis fails that check and takes the full path here.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from freehold.app.context import Ctx
from freehold.app.redis_client import feed_key
from freehold.app.services import accounts, ratelimit
from freehold.app.services.accounts import session_cache_key
from freehold.app.services.errors import Unauthorized

CACHE_TTL = 3600


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def login(ctx: Ctx, login: str, password: str, *, ip: str = "") -> tuple[str, int]:
    """(token, account id) for good credentials; Unauthorized or RateLimited otherwise."""
    s = ctx.settings
    await ratelimit.hit(ctx.redis, "login", ip or "-", s.rl_login_per_ip, s.rl_login_window)
    row = await accounts.find_login(ctx, login)
    # one counter per account, however it is named (alice, @Alice, alice@example.org); a name
    # that is no account counts under its own lower-cased form
    who: int | str = row["id"] if row is not None else (
        login.strip().lstrip("@").lower()[:254] if isinstance(login, str) else "-")
    await ratelimit.hit(ctx.redis, "login_account", who, s.rl_login_per_account,
                        s.rl_login_window)
    row = await accounts.match_password(ctx, row, password)
    return await create_session(ctx, row["id"]), row["id"]


async def create_session(ctx: Ctx, account_id: int) -> str:
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(days=ctx.settings.session_days)
    await ctx.db.execute(
        "INSERT INTO sessions (token_hash, account_id, expires_at) VALUES ($1, $2, $3)",
        hash_token(token), account_id, expires)
    return token


async def logout(ctx: Ctx, token: str) -> None:
    th = hash_token(token)
    await ctx.db.execute("DELETE FROM sessions WHERE token_hash = $1", th)
    await ctx.redis.delete(session_cache_key(th))
    ctx.session_hints.drop(th)


async def resolve(ctx: Ctx, token: str | None) -> int | None:
    """The account id of a session token, or None."""
    if not token or len(token) > 200:
        return None
    th = hash_token(token)
    ckey = session_cache_key(th)
    # through the coalesced read pipeline on app.redis_wire (ctx.reads), not redis-py's GET:
    # less app CPU on every request that is not the home feed's fast path
    cached = (await ctx.reads([("get", ckey)]))[0]
    if cached:
        ctx.session_hints.put(th, int(cached))
        return int(cached)
    row = await ctx.db.fetchrow(
        "SELECT s.account_id, a.last_active_at FROM sessions s JOIN accounts a"
        " ON a.id = s.account_id WHERE s.token_hash = $1 AND s.expires_at > now()", th)
    if row is None:
        return None
    aid = int(row["account_id"])
    await mark_active(ctx, aid, row["last_active_at"])
    await ctx.redis.set(ckey, str(aid), ex=CACHE_TTL)
    ctx.session_hints.put(th, aid)
    return aid


def session_hint(ctx: Ctx, token: str | None) -> tuple[str, int] | None:
    """(Redis key of the session, account it belonged to) when this process has seen the token;
    the caller must check that the key still holds that account (see module doc)."""
    if not token or len(token) > 200:
        return None
    th = hash_token(token)
    aid = ctx.session_hints.get(th)
    return None if aid is None else (session_cache_key(th), aid)


async def mark_active(ctx: Ctx, account_id: int, last_active_at: datetime) -> None:
    now = datetime.now(UTC)
    if now - last_active_at > timedelta(days=ctx.settings.inactive_days):
        await ctx.redis.delete(feed_key(account_id))  # stale: fan-out skipped it, rebuild
    await ctx.db.execute("UPDATE accounts SET last_active_at = now() WHERE id = $1", account_id)


async def require(ctx: Ctx, token: str | None) -> int:
    aid = await resolve(ctx, token)
    if aid is None:
        raise Unauthorized("log in first: send `Authorization: Bearer <token>`")
    return aid
