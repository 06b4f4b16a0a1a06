"""The audit log: every moderation and admin action, kept after the accounts are gone."""

from __future__ import annotations

from typing import Any

from app.ids import MAX_ID, new_id


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
