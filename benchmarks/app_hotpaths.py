"""Hot paths of the social app on loopback: home-feed reads (fan-out + Redis) against the
pull-on-read SQL baseline in the same run, post creates, fan-out inserts per worker core.

    .venv/bin/python benchmarks/app_hotpaths.py [--accounts 20000] [--posts 200000] [--seconds 8]

Seeds accounts, a power-law follow graph and posts with COPY into a fresh local PostgreSQL and
Redis (deploy.localservices), serves the app with one uvicorn worker pinned to core 0 and drives
it with wrk pinned to core 1 (PostgreSQL and Redis float). Prints a table and writes
benchmarks/results/app_hotpaths.json (read by the capacity model). The full 100k-account /
1M-post benchmark is `--accounts 100000 --posts 1000000`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.context import close_ctx, open_ctx  # noqa: E402
from app.db import migrate  # noqa: E402
from app.ids import EPOCH_MS, RANDOM_BITS  # noqa: E402
from app.redis_client import feed_key  # noqa: E402
from app.services import feed  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.worker.fanout import fanout_post  # noqa: E402
from deploy.localservices import free_port, local_stack, wait_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "app_hotpaths.json"


def follow_graph(n: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """(follower, followee) pairs: out-degree lognormal around `mean`, followees Zipf-like, so a
    few accounts gather a large share of all follows."""
    out = np.clip(rng.lognormal(np.log(mean) - 0.5, 1.0, n).astype(np.int64), 1, n - 1)
    total = int(out.sum())
    weights = 1.0 / np.arange(1, n + 1) ** 0.9
    weights /= weights.sum()
    followee = rng.choice(n, size=int(total * 1.15), p=weights)
    follower = np.repeat(np.arange(n), out)
    followee = followee[: len(follower)]
    pairs = follower * n + followee
    pairs = np.unique(pairs[follower != followee])
    return np.stack([pairs // n, pairs % n], axis=1)


async def seed(dsn: str, n_acc: int, n_posts: int, mean_follows: float, readers: int
               ) -> tuple[list[int], list[str], dict[str, float]]:
    rng = np.random.default_rng(42)
    t0 = time.perf_counter()
    ids = rng.choice(2**62, size=n_acc, replace=False).astype(np.int64) + 1
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")  # no FK checks in COPY
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "accounts", columns=["id", "username", "email", "password_hash", "display_name",
                                 "last_active_at"],
            records=[(int(a), f"user{i}", f"user{i}@example.org", "x", f"User {i}", now)
                     for i, a in enumerate(ids)])
        edges = follow_graph(n_acc, mean_follows, rng)
        await conn.copy_records_to_table(
            "follows", columns=["follower_id", "followee_id"],
            records=((int(ids[a]), int(ids[b])) for a, b in edges))
        # posts over the last 3 days, authors weighted like the follow graph
        ms_now = int(time.time() * 1000)
        times = np.sort(rng.integers(ms_now - 3 * 86400_000, ms_now - 60_000, n_posts))
        pids = ((times - EPOCH_MS) << RANDOM_BITS) | rng.integers(0, 1 << RANDOM_BITS, n_posts)
        w = 1.0 / np.arange(1, n_acc + 1) ** 0.5
        authors = rng.choice(n_acc, size=n_posts, p=w / w.sum())
        await conn.execute("SELECT freehold_ensure_post_partitions(2, 1)")
        await conn.copy_records_to_table(
            "posts", columns=["id", "author_id", "body"],
            records=((int(p), int(ids[a]), f"post number {k} #bench{k % 50}")
                     for k, (p, a) in enumerate(zip(pids, authors, strict=True))))
        await conn.execute("SET session_replication_role = origin")
        await conn.execute(
            "UPDATE accounts a SET followers_count = c.n FROM (SELECT followee_id, count(*) n"
            " FROM follows GROUP BY followee_id) c WHERE a.id = c.followee_id")
        await conn.execute(
            "UPDATE accounts a SET following_count = c.n FROM (SELECT follower_id, count(*) n"
            " FROM follows GROUP BY follower_id) c WHERE a.id = c.follower_id")
        await conn.execute(
            "UPDATE accounts a SET posts_count = c.n FROM (SELECT author_id, count(*) n"
            " FROM posts GROUP BY author_id) c WHERE a.id = c.author_id")
        await conn.execute("ANALYZE")
        # sessions for the readers: ordinary accounts (median follows)
        reader_ids = [int(x) for x in rng.choice(ids[n_acc // 10:], size=readers, replace=False)]
        tokens = [secrets.token_urlsafe(32) for _ in reader_ids]
        exp = now + timedelta(days=1)
        await conn.copy_records_to_table(
            "sessions", columns=["token_hash", "account_id", "expires_at"],
            records=[(hashlib.sha256(t.encode()).digest(), a, exp)
                     for t, a in zip(tokens, reader_ids, strict=True)])
        stats = {"seed_seconds": round(time.perf_counter() - t0, 1), "follows": len(edges),
                 "max_followers": int(await conn.fetchval(
                     "SELECT max(followers_count) FROM accounts")),
                 "mean_follows": round(len(edges) / n_acc, 1)}
    finally:
        await conn.close()
    return reader_ids, tokens, stats


async def warm_feeds(settings: Settings, reader_ids: list[int]) -> None:
    ctx = await open_ctx(settings)
    try:
        for a in reader_ids:
            await feed.rebuild(ctx, a)
    finally:
        await close_ctx(ctx)


async def bench_fanout(settings: Settings, n_posts: int = 20) -> dict[str, float]:
    """Fan out real posts of the most-followed accounts into cached feeds of all accounts;
    inserts per second of wall time and per CPU-second of this (worker) process."""
    ctx = await open_ctx(settings.replace(big_account_followers=10**9, fanout_chunk=2000))
    try:
        all_ids = [r["id"] for r in await ctx.db.fetch("SELECT id FROM accounts")]
        pipe = ctx.redis.pipeline(transaction=False)
        for i, a in enumerate(all_ids):  # every account has a cached feed
            pipe.rpush(feed_key(a), "0")
            if i % 5000 == 4999:
                await pipe.execute()
                pipe = ctx.redis.pipeline(transaction=False)
        await pipe.execute()
        top = await ctx.db.fetch(
            "SELECT p.id, p.author_id FROM accounts a JOIN LATERAL (SELECT id, author_id FROM"
            " posts WHERE author_id = a.id ORDER BY id DESC LIMIT 1) p ON true"
            " ORDER BY a.followers_count DESC LIMIT $1", n_posts)
        t0, c0 = time.perf_counter(), time.process_time()
        inserts = 0
        for r in top:
            inserts += await fanout_post(ctx, r["id"], r["author_id"])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"fanout_posts": len(top), "fanout_inserts": inserts,
                "fanout_inserts_per_s": round(inserts / wall),
                "fanout_inserts_per_cpu_s": round(inserts / cpu),
                "fanout_seconds": round(wall, 2)}
    finally:
        await close_ctx(ctx)


WRK_LUA = """
tokens = {%s}
method = "%s"
body = %s
counter = 0
request = function()
  counter = counter + 1
  local t = tokens[(counter %% #tokens) + 1]
  local h = {["Authorization"] = "Bearer " .. t}
  if body ~= nil then
    h["Content-Type"] = "application/json"
    return wrk.format(method, nil, h, string.format(body, counter))
  end
  return wrk.format(method, nil, h)
end
"""


def wrk(url: str, tokens: list[str], seconds: int, method: str = "GET",
        body: str | None = None, conns: int = 32) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % (", ".join(f'"{t}"' for t in tokens), method,
                           json.dumps(body) if body else "nil"))
        script = f.name
    try:
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
                              "--latency", "-s", script, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": round(rps), "p50_ms": pct("50"), "p99_ms": pct("99"),
            "errors": int(non2xx.group(1)) if non2xx else 0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20000)
    ap.add_argument("--posts", type=int, default=200000)
    ap.add_argument("--mean-follows", type=float, default=100)
    ap.add_argument("--readers", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=8)
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console()
    with local_stack() as stack:
        pg, rd = stack["postgres"], stack["redis"]
        settings = Settings(database_url=pg.dsn, redis_url=rd.url,  # type: ignore[attr-defined]
                            rl_write_per_account=0, rl_write_per_ip=0, bench_endpoints=True,
                            big_account_followers=max(1000, args.accounts // 20),
                            db_pool_min=4, db_pool_max=16)
        migrate(settings.database_url)
        with console.status("seeding with COPY…"):
            readers, tokens, stats = asyncio.run(
                seed(settings.database_url, args.accounts, args.posts, args.mean_follows,
                     args.readers))
        console.print(f"seeded {args.accounts} accounts, {stats['follows']} follows, "
                      f"{args.posts} posts in {stats['seed_seconds']} s")
        with console.status("warming feeds…"):
            asyncio.run(warm_feeds(settings, readers))
        port = free_port()
        env = {**os.environ, **settings.to_env()}
        server = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "app.main:create_app",
             "--factory", "--port", str(port), "--workers", "1", "--log-level", "warning",
             "--no-access-log"], env=env, cwd=ROOT)
        try:
            wait_port(port, timeout=30)
            base = f"http://127.0.0.1:{port}/api/v1"
            wrk(f"{base}/timelines/home?limit=40", tokens, 2)  # warm-up
            results: dict[str, object] = {"accounts": args.accounts, "posts": args.posts,
                                          **stats}
            with console.status("home feed (fan-out)…"):
                results["home_feed"] = wrk(f"{base}/timelines/home?limit=40", tokens,
                                           args.seconds)
            with console.status("home feed (pull-on-read baseline)…"):
                results["pull_baseline"] = wrk(f"{base}/timelines/home_pull?limit=40", tokens,
                                               args.seconds)
            with console.status("post creates…"):
                results["post_create"] = wrk(f"{base}/posts", tokens, args.seconds, "POST",
                                             '{"body": "benchmark post %d #bench"}', conns=16)
        finally:
            server.terminate()
            server.wait(timeout=20)
        with console.status("fan-out…"):
            results.update(asyncio.run(bench_fanout(settings)))
    home, pull = results["home_feed"], results["pull_baseline"]  # type: ignore[assignment]
    results["speedup_vs_pull"] = round(home["rps"] / max(1, pull["rps"]), 1)  # type: ignore
    results["app_cores"] = 1
    results["measured_at"] = datetime.now(UTC).isoformat()
    table = Table(title="Freehold app hot paths (1 app core, loopback)")
    for col in ("path", "req/s", "p50 ms", "p99 ms", "non-2xx"):
        table.add_column(col)
    for name in ("home_feed", "pull_baseline", "post_create"):
        r = results[name]  # type: ignore[assignment]
        table.add_row(name, str(r["rps"]), f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",  # type: ignore
                      str(r["errors"]))  # type: ignore[index]
    console.print(table)
    console.print(f"home feed / pull baseline: {results['speedup_vs_pull']}×; fan-out: "
                  f"{results['fanout_inserts_per_s']} inserts/s wall, "
                  f"{results['fanout_inserts_per_cpu_s']} per worker CPU-second")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
