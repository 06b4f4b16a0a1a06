"""Moderation worker: runs the rule-based pre-flagger on every new post at once."""

from __future__ import annotations

import logging

from freehold.app.context import Ctx
from freehold.app.services.moderation import preflag
from freehold.app.worker.consumer import Entry

log = logging.getLogger("freehold.worker")


async def handle(ctx: Ctx, batch: list[Entry]) -> None:
    for _eid, fields in batch:
        rule = await preflag(ctx, int(fields["post"]))
        if rule:
            log.info("pre-flagged post %s (%s)", fields["post"], rule)
