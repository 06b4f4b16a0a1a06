"""The workers' stream loop: a store unavailable for a moment (asyncpg's connection closed in
the middle of an operation during a PostgreSQL member's restart) is retried, not the end of
the worker; a bug still ends it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

import freehold.app.worker.consumer as consumer
from freehold.app.worker.consumer import StreamWorker


class FakeRedis:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def xgroup_create(self, *a: Any, **kw: Any) -> None:
        return None

    async def xautoclaim(self, *a: Any, **kw: Any) -> list[Any]:
        return ["0-0", [], []]

    async def xreadgroup(self, *a: Any, **kw: Any) -> list[Any]:
        return [("s", [("1-0", {"post": "1"})])]

    async def xack(self, stream: str, group: str, *ids: str) -> None:
        self.acked += ids


def worker(errors: list[BaseException]) -> tuple[StreamWorker, FakeRedis, list[int]]:
    redis = FakeRedis()
    handled: list[int] = []

    async def handler(ctx: Any, batch: list[Any]) -> None:
        if errors:
            raise errors.pop(0)
        handled.append(len(batch))

    ctx = SimpleNamespace(redis=redis, settings=SimpleNamespace(
        worker_claim_idle_ms=15000, worker_batch=50, worker_block_ms=1))
    return StreamWorker(ctx, "s", "g", handler, consumer="t-1"), redis, handled  # type: ignore[arg-type]


def test_a_store_unavailable_is_retried_and_the_batch_redone(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    async def no_wait(_s: float) -> None:
        return None

    monkeypatch.setattr(consumer.asyncio, "sleep", no_wait)
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    w, redis, handled = worker([lost, asyncpg.CannotConnectNowError("shutting down")])
    asyncio.run(w.run(asyncio.Event(), max_rounds=3))
    assert handled == [1] and redis.acked == ["1-0"]  # acknowledged only once handled


def test_a_bug_still_ends_the_worker() -> None:
    w, redis, handled = worker([ValueError("a bug")])
    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(w.run(asyncio.Event(), max_rounds=3))
    assert not redis.acked
