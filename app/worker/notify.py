"""Notification worker: events stream → notifications table."""

from __future__ import annotations

from freehold.app.context import Ctx
from freehold.app.services.notifications import store
from freehold.app.worker.consumer import Entry


async def handle(ctx: Ctx, batch: list[Entry]) -> None:
    events = [(f["kind"], int(f["actor"]), int(f["target"]), int(f.get("post") or 0) or None)
              for _eid, f in batch]
    await store(ctx.db, events)
