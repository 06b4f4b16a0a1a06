"""What app.dbretry's RetryingPool costs when nothing fails: the same statements through the
bare asyncpg pool and through the wrapper, alternated in rounds in one run (same machine load).

    nice -n 10 .venv/bin/python benchmarks/db_retry_overhead.py [--calls 4000] [--rounds 5]

A local PostgreSQL (app.devstack, production durability unless told), one pool of 4
connections, one client coroutine at a time (the wrapper's cost is per call, not contention):
`fetchrow` of a point read, and a two-statement read on one connection (the home feed's
`_pages` shape: `acquire` + 2 fetch against `reads(fn)`), which goes first alternating by
round. Prints microseconds of client CPU per call, the ratio per round and their median; writes
benchmarks/results/db_retry_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from resultsfile import write_results  # noqa: E402

from freehold.app.db import create_pool  # noqa: E402
from freehold.app.dbretry import RetryingPool  # noqa: E402
from freehold.app.devstack import DURABILITY, Postgres, durability_of  # noqa: E402

POINT = "SELECT $1::bigint + 1"


async def point(pool: Any, n: int) -> None:
    for i in range(n):
        await pool.fetchrow(POINT, i)


async def two_acquire(pool: Any, n: int) -> None:
    for i in range(n):
        async with pool.acquire() as con:
            await con.fetch(POINT, i)
            await con.fetch(POINT, i + 1)


async def two_wrapped(pool: RetryingPool, n: int) -> None:
    for i in range(n):
        async def read(con: Any, i: int = i) -> None:
            await con.fetch(POINT, i)
            await con.fetch(POINT, i + 1)
        await pool.reads(read)


async def timed(fn: Any, pool: Any, n: int) -> float:
    """Microseconds per call of `fn(pool, n)` (process CPU time: the client's own cost)."""
    start = time.process_time()
    await fn(pool, n)
    return (time.process_time() - start) / n * 1e6


async def measure(dsn: str, calls: int, rounds: int) -> dict[str, Any]:
    bare = await create_pool(dsn, 4, 4)
    wrapped = RetryingPool(bare, 8.0)
    pairs = {"fetchrow": (point, point), "reads_2_statements": (two_acquire, two_wrapped)}
    out: dict[str, Any] = {}
    try:
        for fn, _ in pairs.values():
            await fn(bare, calls // 10)  # warm: statements prepared on every connection
        for name, (bare_fn, wrapped_fn) in pairs.items():
            per_round = []
            for k in range(rounds):  # which goes first alternates
                if k % 2:
                    w = await timed(wrapped_fn, wrapped, calls)
                    b = await timed(bare_fn, bare, calls)
                else:
                    b = await timed(bare_fn, bare, calls)
                    w = await timed(wrapped_fn, wrapped, calls)
                per_round.append({"bare_us": round(b, 1), "wrapped_us": round(w, 1),
                                  "ratio": round(w / b, 3)})
            out[name] = {"rounds": per_round,
                         "median_ratio": statistics.median(r["ratio"] for r in per_round),
                         "median_extra_us": round(statistics.median(
                             r["wrapped_us"] - r["bare_us"] for r in per_round), 1)}
    finally:
        await bare.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--durability", choices=DURABILITY, default="production")
    args = ap.parse_args()
    if args.calls < 10 or args.rounds < 1:
        print("--calls: at least 10, --rounds: at least 1", file=sys.stderr)
        return 2
    # a SIGTERM (timeout, kill) still stops the PostgreSQL this started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory() as tmp:
        pg = Postgres(Path(tmp) / "pg", durability=args.durability).start()
        try:
            durability = durability_of(pg)
            result = asyncio.run(measure(pg.dsn, args.calls, args.rounds))
        finally:
            pg.stop()
    for name, r in result.items():
        ratios = [x["ratio"] for x in r["rounds"]]
        print(f"{name}: median ratio wrapped/bare {r['median_ratio']:.3f} (rounds "
              f"{min(ratios):.2f}-{max(ratios):.2f}), extra {r['median_extra_us']} µs of "
              f"client CPU per call")
    path = write_results(ROOT / "benchmarks" / "results" / "db_retry_overhead.json", result,
                         script=__file__, settings=vars(args), durability=durability)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
