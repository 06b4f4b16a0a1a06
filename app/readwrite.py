"""Which PostgreSQL a request reads from: the replica (settings.database_read_url) unless the
account wrote a moment ago.

Reads that tolerate lag go to `ctx.ro`, a replica when one is set. An account that has just
written reads from the primary for `settings.read_your_writes_ms` (as Rails' DatabaseSelector
does): the reply it just posted is in the thread it is sent back to, the account it just
followed shows as followed. Each write at the door (app.api.deps.writer, the web's
checked_form) leaves a short-lived Redis mark, `rw:<account>`; the door of a read looks for it
and, when it is there, sets PRIMARY_READS for the rest of the request (a context variable:
one request's task). Without a replica nothing is marked or looked up.

Point reads that find nothing on the replica (a post or account made a moment ago by someone
else, reached by a link in a notification) read again on the primary (`fetchrow_fresh`), and
what is cached for days (home feeds rebuilt, big accounts' post lists) is read from the
primary only (app.services.feed).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from freehold.app.context import Ctx

PRIMARY_READS: ContextVar[bool] = ContextVar("freehold_primary_reads", default=False)


def mark_key(account_id: int) -> str:
    return f"rw:{account_id}"


async def wrote(ctx: Ctx, account_id: int) -> None:
    """`account_id` is writing: this request and its reads for a moment read the primary."""
    if ctx.has_replica:
        PRIMARY_READS.set(True)
        await ctx.redis.set(mark_key(account_id), 1, px=ctx.settings.read_your_writes_ms)


async def reading(ctx: Ctx, account_id: int) -> None:
    """`account_id` is reading: from the primary if it wrote within the last moment."""
    if ctx.has_replica and await ctx.redis.exists(mark_key(account_id)):
        PRIMARY_READS.set(True)


async def fetchrow_fresh(ctx: Ctx, sql: str, *args: Any) -> Any:
    """A row by key from the replica, or, when the replica has none (yet), from the primary."""
    row = await ctx.ro.fetchrow(sql, *args)
    if row is None and ctx.has_replica and not PRIMARY_READS.get():
        row = await ctx.db.fetchrow(sql, *args)
    return row
