"""A Redis Streams consumer-group loop shared by the workers.

Each round: claim entries another consumer left pending longer than `worker_claim_idle_ms`
(XAUTOCLAIM: that consumer died mid-batch), then read new entries (XREADGROUP >), hand the batch
to the handler, XACK it. An entry is acknowledged only after its handler finished, so a worker
killed mid-batch loses nothing: a survivor claims and redoes its entries (handlers are written to
tolerate a redo; the feed read path drops duplicate ids).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.exceptions import ResponseError

from freehold.app.context import Ctx
from freehold.app.unavailable import store_of

log = logging.getLogger("freehold.worker")

Entry = tuple[str, dict[str, str]]
Handler = Callable[[Ctx, list[Entry]], Awaitable[None]]


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class StreamWorker:
    ctx: Ctx
    stream: str
    group: str
    handler: Handler
    consumer: str = field(default_factory=consumer_name)
    processed: int = 0
    claimed: int = 0
    _last_claim: float = 0.0

    async def ensure_group(self) -> None:
        try:
            await self.ctx.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def claim_stale(self) -> list[Entry]:
        """Entries idle past the claim time in other consumers' pending lists, now ours."""
        s = self.ctx.settings
        out: list[Entry] = []
        start = "0-0"
        for _ in range(100):  # bounded: at most 100 pages of `worker_batch`
            res = await self.ctx.redis.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=s.worker_claim_idle_ms,
                start_id=start, count=s.worker_batch)
            start, entries = res[0], res[1]
            out += [(eid, fields) for eid, fields in entries if fields is not None]
            if start in ("0-0", b"0-0") or len(out) >= s.worker_batch:
                break
        self.claimed += len(out)
        if out:
            log.info("%s claimed %d stale entries of %s", self.consumer, len(out), self.stream)
        return out

    async def step(self) -> int:
        """One round; returns the number of entries handled."""
        s = self.ctx.settings
        batch: list[Entry] = []
        now = time.monotonic()
        if now - self._last_claim >= s.worker_claim_idle_ms / 2000:
            self._last_claim = now
            batch = await self.claim_stale()
        if not batch:
            res = await self.ctx.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=s.worker_batch,
                block=s.worker_block_ms)
            for _stream, entries in res or []:
                batch += [(eid, fields) for eid, fields in entries]
        if not batch:
            return 0
        await self.handler(self.ctx, batch)
        await self.ctx.redis.xack(self.stream, self.group, *[eid for eid, _ in batch])
        self.processed += len(batch)
        return len(batch)

    async def run(self, stop: asyncio.Event, max_rounds: int | None = None) -> None:
        await self.ensure_group()
        rounds = 0
        while not stop.is_set() and (max_rounds is None or rounds < max_rounds):
            rounds += 1
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - only a store's unavailability is retried
                # PostgreSQL or Redis unavailable for a moment (a failover, a member restarted:
                # asyncpg's "connection was closed in the middle of operation" ended the fan-out
                # worker in the rolling-restart drill); the batch is not acknowledged, so this
                # worker or another redoes it. Anything else (a bug) still ends the worker.
                if not isinstance(exc, (ConnectionError, OSError, ResponseError)) and \
                        store_of(exc) is None:
                    raise
                log.warning("%s: %s: %s; retrying in 1 s", self.stream, type(exc).__name__, exc)
                await asyncio.sleep(1)

    async def drain(self, max_rounds: int = 1000) -> int:
        """Handle everything queued now (used by tests and the dev command)."""
        await self.ensure_group()
        total = 0
        saved = self.ctx.settings
        self.ctx.settings = saved.replace(worker_block_ms=1)
        try:
            for _ in range(max_rounds):
                n = await self.step()
                total += n
                if n == 0:
                    break
        finally:
            self.ctx.settings = saved
        return total
