"""Concurrent requests' reads coalesced into one round trip.

A round trip through redis-py or asyncpg costs the app more CPU than the work in it: a pipeline
of five Redis commands ~0.45 ms, a pool query ~0.7 ms, where the same commands for eight
requests in one pipeline cost ~0.23 ms a request and one query for eight ~0.31 ms (measured on
the home feed's reads, benchmarks/app_hotpaths.py). A `Batcher` gathers the items that callers
submit while the loop is busy and runs them as one batch:

- the first item starts a batch on the next loop turn (`call_soon`), so the requests whose bytes
  arrived together join it — an idle process adds no wait;
- at most `concurrency` batches (one by default) run at a time; items that arrive meanwhile
  form the next batch, started the moment one ends (the busier the process, the bigger the
  batch, by itself);
- each caller gets its own result or its own exception; a caller that was cancelled is skipped.

`RedisReads` is such a batcher for read commands: the commands of all callers go in one
pipeline (duplicates sent once: the same big account's head wanted by several readers, the
epoch key every reader reads), answered per caller in order; a command's error is raised to
the callers that sent it. The pipeline goes on app.redis_wire's raw connections (hiredis),
which cost a fraction of redis-py's pipeline, and through redis-py where the wire cannot go.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import Histogram
from redis.exceptions import RedisClusterException

from freehold.app.redis_wire import Command, Redirected, Wire

T = TypeVar("T")
R = TypeVar("R")

BATCH_ITEMS = Histogram("freehold_batch_items", "Callers served by one coalesced round trip",
                        ["batcher"], buckets=(1, 2, 4, 8, 16, 32, 64))


class Batcher(Generic[T, R]):
    """`await batcher(item)` -> the result `run` gives for it; `run(items)` returns one result
    (or exception instance) per item, in order."""

    def __init__(self, name: str,
                 run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
                 max_items: int = 64, concurrency: int = 1) -> None:
        self._run = run
        self.concurrency = concurrency
        self._sizes = BATCH_ITEMS.labels(name)
        self.max_items = max_items
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0  # batches started and not finished (at most `concurrency`)
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches run, and items in them: the mean batch size, for tests
        self.items = 0

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, fut))
        if self._running < self.concurrency:
            self._running += 1
            loop.call_soon(self._start)
        return await fut

    def _start(self) -> None:
        batch = [(i, f) for i, f in self._queue[:self.max_items] if not f.done()]
        del self._queue[:self.max_items]
        if not batch:
            self._next()
            return
        task = asyncio.ensure_future(self._go(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _next(self) -> None:
        """A batch slot is free: the queue's next batch takes it, or it stays free."""
        if self._queue:
            asyncio.get_running_loop().call_soon(self._start)
        else:
            self._running -= 1

    async def _go(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        self._sizes.observe(len(batch))
        try:
            results = await self._run([i for i, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, f in batch:
                if not f.done():
                    f.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                self._running -= 1
                raise
        else:
            for (_, f), res in zip(batch, results, strict=True):
                if f.done():
                    continue
                if isinstance(res, BaseException):
                    f.set_exception(res)
                else:
                    f.set_result(res)
        self._next()


class RedisReads(Batcher[list[Command], list[Any]]):
    """Read commands of concurrent callers in one pipeline (see module doc): on the raw
    connections of app.redis_wire when it speaks to the client's Redis, else (and for a batch
    that meets a cluster redirection) through the client's own pipeline."""

    def __init__(self, redis: Any, max_items: int = 64) -> None:
        super().__init__("redis_reads", self._pipeline, max_items)
        self.redis = redis
        self.wire = Wire.for_client(redis)

    async def _pipeline(self, items: list[list[Command]]) -> list[list[Any] | BaseException]:
        slot: dict[Command, int] = {}
        for cmds in items:
            for c in cmds:
                if c not in slot:
                    slot[c] = len(slot)
        answers = None
        if self.wire is not None:
            with contextlib.suppress(Redirected, RedisClusterException):
                answers = await self.wire.execute(list(slot))
        if answers is None:
            pipe = self.redis.pipeline(transaction=False)
            for c in slot:
                getattr(pipe, c[0])(*c[1:])
            answers = await pipe.execute(raise_on_error=False)
        out: list[list[Any] | BaseException] = []
        for cmds in items:
            mine = [answers[slot[c]] for c in cmds]
            err = next((a for a in mine if isinstance(a, Exception)), None)
            out.append(err if err is not None else mine)
        return out

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
