"""app.batching.Batcher: concurrent callers coalesced into batches, each caller answered with
its own result or error."""

from __future__ import annotations

import asyncio

import pytest

from freehold.app.batching import Batcher

pytestmark = pytest.mark.unit


class Recorder:
    """A batch function that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


def test_callers_of_one_turn_share_a_batch() -> None:
    async def main() -> None:
        rec = Recorder()
        b = Batcher("t", rec)
        got = await asyncio.gather(*(b(i) for i in range(10)))
        assert got == [i * 10 for i in range(10)]
        assert rec.batches == [list(range(10))]
        assert (b.batches, b.items) == (1, 10)

    asyncio.run(main())


def test_one_batch_at_a_time_and_the_next_takes_what_came_meanwhile() -> None:
    async def main() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher("t", rec)
        first = [asyncio.ensure_future(b(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert rec.batches == [[0, 1, 2]]  # running, held open
        later = [asyncio.ensure_future(b(i)) for i in range(3, 8)]
        await asyncio.sleep(0.01)
        assert rec.batches == [[0, 1, 2]]  # queued behind the running batch
        rec.gate.set()
        assert await asyncio.gather(*first, *later) == [i * 10 for i in range(8)]
        assert rec.batches == [[0, 1, 2], [3, 4, 5, 6, 7]]
        assert await b(9) == 90  # idle again: a new batch starts at once

    asyncio.run(main())


def test_max_items_splits_batches() -> None:
    async def main() -> None:
        rec = Recorder()
        b = Batcher("t", rec, max_items=4)
        assert await asyncio.gather(*(b(i) for i in range(10))) == [i * 10 for i in range(10)]
        assert [len(x) for x in rec.batches] == [4, 4, 2]

    asyncio.run(main())


def test_an_item_error_reaches_its_caller_only() -> None:
    async def main() -> None:
        b = Batcher("t", Recorder())
        got = await asyncio.gather(b(1), b(-1), b(2), return_exceptions=True)
        assert got[0] == 10 and got[2] == 20
        assert isinstance(got[1], ValueError) and str(got[1]) == "bad -1"

    asyncio.run(main())


def test_a_failed_batch_fails_its_callers_and_the_next_batch_runs() -> None:
    calls = 0

    async def flaky(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return items

    async def main() -> None:
        b = Batcher("t", flaky)
        got = await asyncio.gather(b(1), b(2), return_exceptions=True)
        assert all(isinstance(g, ConnectionError) for g in got)
        assert await asyncio.gather(b(3), b(4)) == [3, 4]

    asyncio.run(main())


def test_a_cancelled_caller_is_skipped() -> None:
    async def main() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher("t", rec)
        running = asyncio.ensure_future(b(1))
        await asyncio.sleep(0.01)
        gone, kept = asyncio.ensure_future(b(2)), asyncio.ensure_future(b(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        rec.gate.set()
        assert await running == 10 and await kept == 30
        assert gone.cancelled()
        assert rec.batches == [[1], [3]]  # the cancelled caller's item was not sent

    asyncio.run(main())


def test_concurrency_lets_that_many_batches_run_at_once() -> None:
    async def main() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher("t", rec, concurrency=2)
        first = asyncio.ensure_future(b(1))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(b(2))
        await asyncio.sleep(0.01)
        third = asyncio.ensure_future(b(3))
        await asyncio.sleep(0.01)
        assert rec.batches == [[1], [2]]  # two running; the third waits for a free slot
        rec.gate.set()
        assert await asyncio.gather(first, second, third) == [10, 20, 30]
        assert rec.batches == [[1], [2], [3]]

    asyncio.run(main())
