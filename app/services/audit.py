"""The audit log: every moderation and admin action, kept after the accounts are gone."""

from __future__ import annotations

from typing import Any

from freehold.app.ids import MAX_ID, new_id


async def log(conn: Any, actor_id: int | None, action: str, target_kind: str,
              target_id: int | None, detail: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO audit_log (id, actor_id, action, target_kind, target_id, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6)", new_id(), actor_id, action, target_kind, target_id,
        detail)


async def entries(pool: Any, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, at, actor_id, action, target_kind, target_id, detail FROM audit_log"
        f" WHERE id < coalesce($1::bigint, {MAX_ID}) ORDER BY id DESC LIMIT $2",
        before, limit)
    return [{"id": str(r["id"]), "at": r["at"].isoformat(),
             "actor_id": str(r["actor_id"]) if r["actor_id"] else None,
             "action": r["action"], "target_kind": r["target_kind"],
             "target_id": str(r["target_id"]) if r["target_id"] else None,
             "detail": r["detail"]} for r in rows]


async def described(pool: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`entries` with names for people: the actor's and an account target's username (None
    when the account is gone), and for a case target the case's kind, post and account."""
    ids = {int(e["actor_id"]) for e in items if e["actor_id"]}
    ids |= {int(e["target_id"]) for e in items if e["target_kind"] == "account" and e["target_id"]}
    case_ids = [int(e["target_id"]) for e in items if e["target_kind"] == "case" and e["target_id"]]
    names = {int(r["id"]): r["username"] for r in await pool.fetch(
        "SELECT id, username FROM accounts WHERE id = ANY($1::bigint[])", list(ids))} if ids else {}
    cases = {int(r["id"]): {"target_kind": r["target_kind"], "reason": r["reason"],
                            "post_id": str(r["post_id"]) if r["post_id"] else None,
                            "username": r["username"]}
             for r in await pool.fetch(
                 "SELECT c.id, c.target_kind, c.reason, c.post_id, a.username FROM cases c"
                 " JOIN accounts a ON a.id = c.account_id WHERE c.id = ANY($1::bigint[])",
                 case_ids)} if case_ids else {}
    out = []
    for e in items:
        target = int(e["target_id"]) if e["target_id"] else None
        out.append({**e,
                    "actor_username": names.get(int(e["actor_id"])) if e["actor_id"] else None,
                    "target_username": names.get(target) if target is not None
                    and e["target_kind"] == "account" else None,
                    "case": cases.get(target) if target is not None
                    and e["target_kind"] == "case" else None})
    return out
