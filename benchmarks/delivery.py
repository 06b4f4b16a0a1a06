"""Fan-out delivery: how long a new post takes to reach a follower's home feed, end to end.

Used by app_hotpaths.py while its app server runs: a real fan-out worker process
(`python -m freehold.app.worker fanout`) is started and first drains what the post-create round
left in the stream; then, under a steady background of home-feed reads (wrk), authors post
through the API at a steady rate and each post's follower's cached feed (the Redis list every
home-feed read starts from) is read until the post is in it. The time from sending the POST to
then is the delivery time (the issue's target: within 2 s at p99 under normal load); the probe reads
Redis, not the API, so that waiting for slow deliveries does not itself load the app.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from freehold.app.devstack import stop_process
from freehold.app.redis_client import AnyRedis, close_redis, feed_key, make_redis
from freehold.app.settings import Settings
from freehold.app.worker import STREAM_WORKERS

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.01  # a follower's feed read every 10 ms while it waits
GIVE_UP_S = 10.0  # a post not seen by then counts as missed


def sync_client(settings: Settings) -> redis.Redis | redis.RedisCluster:
    """A blocking client of the app's Redis (a cluster client when it is a Redis Cluster)."""
    if settings.redis_cluster:
        return redis.RedisCluster.from_url(settings.redis_url)
    return redis.Redis.from_url(settings.redis_url)


def stream_backlog(r: redis.Redis | redis.RedisCluster) -> int | None:
    """Posts the fan-out group has not read or not acknowledged yet; None while it has no
    consumer (the worker is still starting)."""
    stream, group, _ = STREAM_WORKERS["fanout"]
    try:
        groups = [g for g in r.xinfo_groups(stream) if g["name"] in (group, group.encode())]
    except redis.ResponseError:
        return None
    if not groups or not int(groups[0].get("consumers") or 0):
        return None
    return int(groups[0].get("lag") or 0) + int(groups[0].get("pending") or 0)


async def _follow_pairs(base: str, tokens: list[str], n: int, rng: np.random.Generator
                        ) -> list[tuple[str, int]]:
    """(author token, follower id) for `n` pairs of the seeded readers: the follower follows
    the author now (through the API) and reads its feed once (rebuilt, so cached)."""
    idx = rng.choice(len(tokens), size=(n, 2), replace=False)
    pairs = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for a, f in idx:
            ha, hf = ({"Authorization": f"Bearer {tokens[i]}"} for i in (a, f))
            aid = (await c.get("/accounts/me", headers=ha)).json()["id"]
            fid = (await c.get("/accounts/me", headers=hf)).json()["id"]
            r = await c.post(f"/accounts/{aid}/follow", headers=hf)
            r.raise_for_status()
            (await c.get("/timelines/home?limit=5", headers=hf)).raise_for_status()
            pairs.append((tokens[a], int(fid)))
    return pairs


async def _one(c: httpx.AsyncClient, rd: AnyRedis, author: str, follower: int, n: int
               ) -> float | None:
    """Post as `author`, read `follower`'s cached feed until the post is in it: seconds from
    sending the POST, or None."""
    t0 = time.perf_counter()
    r = await c.post("/posts", headers={"Authorization": f"Bearer {author}"},
                     json={"body": f"delivery probe {n} #bench"})
    r.raise_for_status()
    pid = str(r.json()["id"])  # the app's client decodes replies
    while time.perf_counter() - t0 < GIVE_UP_S:
        if pid in await rd.lrange(feed_key(follower), 0, 50):
            return time.perf_counter() - t0
        await asyncio.sleep(POLL_S)
    return None


async def _probe(base: str, settings: Settings, pairs: list[tuple[str, int]], rate: float,
                 seconds: float) -> list[float | None]:
    """Posts at `rate` per second for `seconds`, each by the next pair's author. Redis is read
    through the app's own client (a blocking pool, cluster-aware): a plain pool raised
    MaxConnectionsError on a loaded machine, a plain client MOVED on a cluster."""
    rd = make_redis(settings)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30,
                                     limits=httpx.Limits(max_connections=200)) as c:
            tasks = []
            start = time.perf_counter()
            n = max(1, int(rate * seconds))
            for i in range(n):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                a, f = pairs[i % len(pairs)]
                tasks.append(asyncio.create_task(_one(c, rd, a, f, i)))
            return list(await asyncio.gather(*tasks))
    finally:
        await close_redis(rd)


def measure_delivery(settings: Settings, base: str, home_url: str, tokens: list[str],
                     wrk: Callable[..., dict[str, Any]], *, rate: float, seconds: int,
                     pairs: int = 50, log: Path) -> dict[str, Any]:
    """Start a fan-out worker, wait for the stream to drain (bounded), probe delivery under a
    background of home-feed reads; stop the worker by its pid."""
    env = {**os.environ, **settings.to_env()}
    worker = subprocess.Popen([sys.executable, "-m", "freehold.app.worker", "fanout"], env=env,
                              cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        with sync_client(settings) as r:
            t0 = time.monotonic()
            while stream_backlog(r) != 0 and time.monotonic() - t0 < 600:
                if worker.poll() is not None:
                    raise RuntimeError(f"the fan-out worker ended: see {log}")
                time.sleep(0.5)
            backlog = stream_backlog(r)
            drained_s = round(time.monotonic() - t0, 1)
        rng = np.random.default_rng(7)
        chosen = asyncio.run(_follow_pairs(base, tokens, pairs, rng))
        # one post delivered first: the worker is up and its connections are made
        warm = asyncio.run(_probe(base, settings, chosen[:1], 1, 1))
        if warm[0] is None:
            raise RuntimeError(f"a warm-up post was not delivered in {GIVE_UP_S:.0f} s")

        async def run() -> tuple[list[float | None], dict[str, Any]]:
            bg = asyncio.create_task(asyncio.to_thread(wrk, home_url, tokens, seconds + 2,
                                                       conns=4))
            got = await _probe(base, settings, chosen, rate, seconds)
            return got, await bg

        got, background = asyncio.run(run())
    finally:
        stop_process(worker, timeout=20)
    seen = np.array([x for x in got if x is not None]) * 1000
    pct = (lambda q: round(float(np.percentile(seen, q)), 1)) if len(seen) else (
        lambda q: float("nan"))
    return {"posts": len(got), "delivered": len(seen), "missed": len(got) - len(seen),
            "rate_per_s": rate, "seconds": seconds, "follow_pairs": len(chosen),
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": round(float(seen.max()), 1) if len(seen) else float("nan"),
            "poll_ms": POLL_S * 1000, "backlog_drained_s": drained_s,
            "backlog_left": backlog,
            "background_home_feed_rps": background["rps"],
            "background_home_feed_p99_ms": background["p99_ms"]}
