"""Moderation: reports, a jury queue (violence first, then oldest), votes, strikes,
suspensions, appeals, the rule-based pre-flagger and the audit log.

One open case per target gathers its reports. N agreeing juror votes (`jury_votes`) decide:
"remove" hides the post (or, for an account case, only strikes) and strikes the author; M strikes
(`strikes_to_suspend`) suspend the account. The author can appeal a removal once; an admin grants
(post shown again, strike lifted, suspension lifted below M) or denies it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from freehold.app.context import Ctx
from freehold.app.ids import new_id
from freehold.app.services import audit
from freehold.app.services.accounts import require_admin
from freehold.app.services.errors import Conflict, Forbidden, Invalid, NotFound
from freehold.app.services.posts import hydrate

# severity: lower comes first in the jury queue; incitement to violence first
REASONS: dict[str, int] = {"incitement": 0, "threat": 1, "illegal": 2, "harassment": 3,
                           "spam": 4, "other": 5}

_V = r"(kill|shoot|hang|lynch|murder|execute|behead|stab|bomb|torch|slaughter|burn down)"
_T = r"(them|him|her|all|every|each|the|those|these|traitors?|cops|police|judges?|senators?)"
PREFLAG_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("death-to", re.compile(r"\bdeath to\b")),
    ("take-up-arms", re.compile(r"\b(take|taking) up arms\b")),
    ("bring-weapons",
     re.compile(r"\bbring (your |the |all )?(guns|weapons|rifles|ammo|zip ?ties)")),
    ("string-up", re.compile(r"\bstring (them|him|her|'?em) up\b")),
    ("call-to-violence", re.compile(
        rf"\b(we (must|should|need to|will|gotta)|let'?s|time to|go|everyone)\b[^.!?\n]{{0,40}}"
        rf"\b{_V}\b")),
    ("violence-at-target", re.compile(rf"\b{_V}\b\s+{_T}\b")),
]


def preflag_match(body: str) -> str | None:
    """The name of the first rule that flags `body` as likely incitement, or None."""
    text = " ".join(body.lower().split())
    for name, rx in PREFLAG_RULES:
        if rx.search(text):
            return name
    return None


async def require_juror(ctx: Ctx, account_id: int) -> None:
    row = await ctx.db.fetchrow("SELECT is_juror, is_admin, suspended_at FROM accounts"
                                " WHERE id = $1", account_id)
    if row is None or not row["is_juror"] or row["suspended_at"] is not None:
        raise Forbidden("jurors only: an admin grants the juror role")


async def report(ctx: Ctx, reporter_id: int, reason: str, *, post_id: int | None = None,
                 account_id: int | None = None, note: str = "") -> dict[str, Any]:
    """Report a post or an account; returns the case it joined."""
    if reason not in REASONS:
        raise Invalid(f"reason: one of {', '.join(REASONS)}", field="reason")
    if (post_id is None) == (account_id is None):
        raise Invalid("report either a post or an account", field="post_id")
    if not isinstance(note, str) or len(note) > 1000 or "\x00" in note:
        raise Invalid("note: at most 1000 characters, no NUL", field="note")

    async def write(conn: Any) -> int:
        if post_id is not None:
            target = await conn.fetchval("SELECT author_id FROM posts WHERE id = $1", post_id)
            if target is None:
                raise NotFound("no such post")
            kind = "post"
        else:
            if not await conn.fetchval("SELECT true FROM accounts WHERE id = $1", account_id):
                raise NotFound("no such account")
            target, kind = account_id, "account"
        if target == reporter_id:
            raise Invalid("you cannot report yourself", field="post_id")
        case_id = await _open_case(conn, kind, post_id, target, reason, "report")
        made = await conn.fetchval(
            "INSERT INTO reports (id, case_id, reporter_id, reason, note)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            new_id(), case_id, reporter_id, reason, note.strip())
        if not made:
            raise Conflict("you already reported this")
        await conn.execute("UPDATE cases SET reports_count = reports_count + 1 WHERE id = $1",
                           case_id)
        await audit.log(conn, reporter_id, "report.create", kind, post_id or target,
                        {"case_id": str(case_id), "reason": reason})
        return case_id

    case_id = await ctx.db.transaction(write)
    return await get_case(ctx, case_id)


async def _open_case(conn: Any, kind: str, post_id: int | None, account_id: int, reason: str,
                     source: str) -> int:
    sev = REASONS[reason]
    col, pred = (("post_id", "target_kind = 'post'") if kind == "post"
                 else ("account_id", "target_kind = 'account'"))
    row = await conn.fetchrow(
        f"SELECT id, severity FROM cases WHERE {col} = $1 AND status = 'open' AND {pred}"
        f" FOR UPDATE", post_id if kind == "post" else account_id)
    if row is not None:
        if sev < row["severity"]:
            await conn.execute("UPDATE cases SET severity = $2, reason = $3 WHERE id = $1",
                               row["id"], sev, reason)
        return int(row["id"])
    cid = new_id()
    await conn.execute(
        "INSERT INTO cases (id, target_kind, post_id, account_id, reason, severity, source)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)", cid, kind, post_id, account_id, reason, sev,
        source)
    return cid


async def preflag(ctx: Ctx, post_id: int) -> str | None:
    """Run the rules on a new post; queue it at once (top severity) when one matches."""
    row = await ctx.db.fetchrow("SELECT author_id, body FROM posts WHERE id = $1", post_id)
    if row is None or not row["body"]:
        return None
    rule = preflag_match(row["body"])
    if rule is None:
        return None

    async def write(conn: Any) -> None:
        cid = await _open_case(conn, "post", post_id, row["author_id"], "incitement", "preflag")
        await audit.log(conn, None, "preflag", "post", post_id,
                        {"case_id": str(cid), "rule": rule})

    await ctx.db.transaction(write)
    return rule


def _case_json(r: Any) -> dict[str, Any]:
    return {"id": str(r["id"]), "target_kind": r["target_kind"],
            "post_id": str(r["post_id"]) if r["post_id"] else None,
            "account_id": str(r["account_id"]), "username": r["username"],
            "reason": r["reason"], "severity": r["severity"], "status": r["status"],
            "source": r["source"], "reports_count": r["reports_count"],
            "created_at": r["created_at"].isoformat(),
            "decided_at": r["decided_at"].isoformat() if r["decided_at"] else None}


CASE_SQL = ("SELECT c.*, a.username FROM cases c JOIN accounts a ON a.id = c.account_id")


async def get_case(ctx: Ctx, case_id: int) -> dict[str, Any]:
    r = await ctx.db.fetchrow(f"{CASE_SQL} WHERE c.id = $1", case_id)
    if r is None:
        raise NotFound("no such case")
    return _case_json(r)


async def queue(ctx: Ctx, juror_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """Open cases for this juror: severity first (violence), then oldest; own cases and cases
    already voted on left out."""
    await require_juror(ctx, juror_id)
    rows = await ctx.db.fetch(
        f"{CASE_SQL} WHERE c.status = 'open' AND c.account_id <> $1"
        f" AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.case_id = c.id AND v.juror_id = $1)"
        f" ORDER BY c.severity, c.created_at LIMIT $2", juror_id, max(1, min(limit, 100)))
    posts = {int(p["id"]): p for p in await hydrate(
        ctx, 0, [r["post_id"] for r in rows if r["post_id"]], pool=ctx.db)}
    out = []
    for r in rows:
        doc = _case_json(r)
        doc["post"] = posts.get(r["post_id"]) if r["post_id"] else None
        doc["reports"] = [{"reason": x["reason"], "note": x["note"]} for x in await ctx.db.fetch(
            "SELECT reason, note FROM reports WHERE case_id = $1 ORDER BY id LIMIT 20", r["id"])]
        out.append(doc)
    return out


async def vote(ctx: Ctx, juror_id: int, case_id: int, decision: str) -> dict[str, Any]:
    if decision not in ("remove", "keep"):
        raise Invalid("decision: remove or keep", field="decision")
    await require_juror(ctx, juror_id)
    s = ctx.settings

    async def write(conn: Any) -> None:
        case = await conn.fetchrow("SELECT * FROM cases WHERE id = $1 FOR UPDATE", case_id)
        if case is None:
            raise NotFound("no such case")
        if case["status"] != "open":
            raise Conflict(f"this case is already decided ({case['status']})")
        if case["account_id"] == juror_id:
            raise Forbidden("you cannot judge your own case")
        made = await conn.fetchval(
            "INSERT INTO votes (case_id, juror_id, decision) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true", case_id, juror_id, decision)
        if not made:
            raise Conflict("you already voted on this case")
        await audit.log(conn, juror_id, "case.vote", "case", case_id, {"decision": decision})
        agreeing = await conn.fetchval(
            "SELECT count(*) FROM votes WHERE case_id = $1 AND decision = $2", case_id, decision)
        if agreeing >= s.jury_votes:
            await _decide(conn, s.strikes_to_suspend, case, decision)

    await ctx.db.transaction(write)
    return await get_case(ctx, case_id)


async def _decide(conn: Any, strikes_to_suspend: int, case: Any, decision: str) -> None:
    cid = case["id"]
    status = "removed" if decision == "remove" else "kept"
    await conn.execute("UPDATE cases SET status = $2, decided_at = now() WHERE id = $1",
                       cid, status)
    await audit.log(conn, None, f"case.{status}", "case", cid, {"votes": "jury"})
    if decision != "remove":
        return
    if case["post_id"]:
        await conn.execute("UPDATE posts SET hidden = true WHERE id = $1", case["post_id"])
        await audit.log(conn, None, "post.hide", "post", case["post_id"], {"case_id": str(cid)})
    strikes = await conn.fetchval(
        "UPDATE accounts SET strikes = strikes + 1 WHERE id = $1 RETURNING strikes",
        case["account_id"])
    await audit.log(conn, None, "account.strike", "account", case["account_id"],
                    {"case_id": str(cid), "strikes": strikes})
    if strikes is not None and strikes >= strikes_to_suspend:
        await conn.execute(
            "UPDATE accounts SET suspended_at = coalesce(suspended_at, now()) WHERE id = $1",
            case["account_id"])
        await audit.log(conn, None, "account.suspend", "account", case["account_id"],
                        {"strikes": strikes})


async def my_cases(ctx: Ctx, account_id: int) -> list[dict[str, Any]]:
    """Decided cases against this account (what it can appeal), newest first."""
    rows = await ctx.db.fetch(
        f"{CASE_SQL} WHERE c.account_id = $1 AND c.status <> 'open'"
        f" ORDER BY c.decided_at DESC LIMIT 100", account_id)
    return [_case_json(r) for r in rows]


async def appeal(ctx: Ctx, account_id: int, case_id: int, body: str) -> dict[str, Any]:
    """The author appeals a removal (allowed while suspended); one appeal per case."""
    if not isinstance(body, str) or not 1 <= len(body.strip()) <= 2000 or "\x00" in body:
        raise Invalid("appeal text: 1 to 2000 characters, no NUL", field="body")

    async def write(conn: Any) -> int:
        case = await conn.fetchrow("SELECT account_id, status FROM cases WHERE id = $1", case_id)
        if case is None or case["account_id"] != account_id:
            raise NotFound("no such case against your account")
        if case["status"] != "removed":
            raise Conflict("only removals can be appealed")
        aid = new_id()
        made = await conn.fetchval(
            "INSERT INTO appeals (id, case_id, account_id, body) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true", aid, case_id, account_id, body.strip())
        if not made:
            raise Conflict("this case was already appealed")
        await audit.log(conn, account_id, "appeal.create", "case", case_id,
                        {"appeal_id": str(aid)})
        return aid

    aid = await ctx.db.transaction(write)
    return {"id": str(aid), "case_id": str(case_id), "status": "open"}


APPEAL_STATUSES = ("open", "granted", "denied")


async def appeals(ctx: Ctx, admin_id: int, status: str = "open") -> list[dict[str, Any]]:
    """Appeals in one status: open ones oldest first (the order to handle them), decided ones
    newest decision first, with the case they are about and who decided them."""
    await require_admin(ctx, admin_id)
    if status not in APPEAL_STATUSES:
        raise Invalid(f"status: one of {', '.join(APPEAL_STATUSES)}", field="status")
    order = "ap.created_at" if status == "open" else "ap.decided_at DESC, ap.id DESC"
    rows = await ctx.db.fetch(
        "SELECT ap.*, a.username, c.reason, c.target_kind, c.post_id, d.username AS decider"
        " FROM appeals ap JOIN accounts a ON a.id = ap.account_id"
        " JOIN cases c ON c.id = ap.case_id"
        " LEFT JOIN accounts d ON d.id = ap.decided_by"
        f" WHERE ap.status = $1 ORDER BY {order} LIMIT 100", status)
    return [{"id": str(r["id"]), "case_id": str(r["case_id"]), "username": r["username"],
             "body": r["body"], "status": r["status"], "reason": r["reason"],
             "target_kind": r["target_kind"],
             "post_id": str(r["post_id"]) if r["post_id"] else None,
             "created_at": r["created_at"].isoformat(),
             "decided_at": r["decided_at"].isoformat() if r["decided_at"] else None,
             "decided_by": r["decider"]} for r in rows]


async def decide_appeal(ctx: Ctx, admin_id: int, appeal_id: int, grant: bool
                        ) -> dict[str, Any]:
    await require_admin(ctx, admin_id)

    async def write(conn: Any) -> str:
        ap = await conn.fetchrow("SELECT * FROM appeals WHERE id = $1 FOR UPDATE", appeal_id)
        if ap is None:
            raise NotFound("no such appeal")
        if ap["status"] != "open":
            raise Conflict(f"appeal already {ap['status']}")
        status = "granted" if grant else "denied"
        await conn.execute("UPDATE appeals SET status = $2, decided_at = now(), decided_by = $3"
                           " WHERE id = $1", appeal_id, status, admin_id)
        await audit.log(conn, admin_id, f"appeal.{status}", "case", ap["case_id"],
                        {"appeal_id": str(appeal_id)})
        if grant:
            case = await conn.fetchrow("SELECT * FROM cases WHERE id = $1", ap["case_id"])
            await conn.execute("UPDATE cases SET status = 'kept', decided_at = now()"
                               " WHERE id = $1", case["id"])
            if case["post_id"]:
                await conn.execute("UPDATE posts SET hidden = false WHERE id = $1",
                                   case["post_id"])
                await audit.log(conn, admin_id, "post.unhide", "post", case["post_id"], {})
            strikes = await conn.fetchval(
                "UPDATE accounts SET strikes = greatest(0, strikes - 1) WHERE id = $1"
                " RETURNING strikes", case["account_id"])
            if strikes is not None and strikes < ctx.settings.strikes_to_suspend:
                lifted = await conn.fetchval(
                    "UPDATE accounts SET suspended_at = NULL WHERE id = $1"
                    " AND suspended_at IS NOT NULL RETURNING true", case["account_id"])
                if lifted:
                    await audit.log(conn, admin_id, "account.unsuspend", "account",
                                    case["account_id"], {"strikes": strikes})
        return status

    status = await ctx.db.transaction(write)
    return {"id": str(appeal_id), "status": status}


async def stats(ctx: Ctx, admin_id: int) -> dict[str, Any]:
    """The admin page: queue size, age of the oldest open case, open cases per reason."""
    await require_admin(ctx, admin_id)
    r = await ctx.db.fetchrow(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM cases WHERE status = 'open'")
    by = await ctx.db.fetch("SELECT reason, count(*) AS n FROM cases WHERE status = 'open'"
                            " GROUP BY reason")
    extra = await ctx.db.fetchrow(
        "SELECT (SELECT count(*) FROM appeals WHERE status = 'open') AS appeals,"
        " (SELECT count(*) FROM accounts WHERE suspended_at IS NOT NULL) AS suspended,"
        " (SELECT count(*) FROM accounts WHERE is_juror) AS jurors")
    oldest = r["oldest"]
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    return {"queue_size": r["n"], "oldest_age_seconds": round(age, 1),
            "by_reason": {x["reason"]: x["n"] for x in by},
            "open_appeals": extra["appeals"], "suspended_accounts": extra["suspended"],
            "jurors": extra["jurors"]}


async def queue_depth(pool: Any) -> tuple[int, float]:
    r = await pool.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age"
        " FROM cases WHERE status = 'open'")
    return int(r["n"]), float(r["age"] or 0.0)
