"""Search: accounts by username or display-name prefix, hashtags by prefix."""

from __future__ import annotations

from typing import Any

from freehold.app.context import Ctx
from freehold.app.db import custom_planned
from freehold.app.services.accounts import ACCOUNT_COLS, account_json
from freehold.app.services.errors import Invalid

# The best `limit` of each match (username, display name), each planned for the prefix (custom
# plan): a prefix that matches few accounts reads them through its prefix index and sorts them;
# one that matches many (a 3-letter prefix of a popular name) walks accounts_by_followers
# (migration 0004), most followed first, and stops at the page; the page is the best of the
# two. The UNION of two SELECT * it replaces read and de-duplicated every matching row whole,
# then sorted them all: 68 ms of PostgreSQL CPU for a prefix matching 100k accounts.
_BRANCH = (f"(SELECT {ACCOUNT_COLS} FROM accounts a WHERE {{match}} LIKE $1"
           "   AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = a.id AND blocked_id = $2)"
           " ORDER BY a.followers_count DESC, a.username LIMIT $3)")
SEARCH_ACCOUNTS_SQL = (
    f"SELECT {ACCOUNT_COLS} FROM ({_BRANCH.format(match='a.username')}"
    f" UNION {_BRANCH.format(match='lower(a.display_name)')}) a"
    " ORDER BY followers_count DESC, username LIMIT $3")


def _prefix(q: str) -> str:
    if not isinstance(q, str):
        raise Invalid("q: text to search for", field="q")
    q = q.strip().lstrip("@#").lower()
    if not q or len(q) > 50:
        raise Invalid("q: 1 to 50 characters", field="q")
    if "\x00" in q:
        raise Invalid("q: must not contain NUL characters", field="q")
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def accounts(ctx: Ctx, viewer_id: int, q: str, limit: int = 20) -> list[dict[str, Any]]:
    pat = _prefix(q)
    limit = max(1, min(limit, 50))
    rows = await custom_planned(ctx.ro, lambda con: con.fetch(SEARCH_ACCOUNTS_SQL, pat,
                                                              viewer_id, limit))
    return [account_json(ctx, r) for r in rows]


async def tags(ctx: Ctx, q: str, limit: int = 20) -> list[dict[str, Any]]:
    pat = _prefix(q)
    limit = max(1, min(limit, 50))
    rows = await custom_planned(ctx.ro, lambda con: con.fetch(
        "SELECT tag, uses FROM tags WHERE tag LIKE $1 ORDER BY uses DESC, tag LIMIT $2",
        pat, limit))
    return [{"tag": r["tag"], "uses": r["uses"]} for r in rows]
