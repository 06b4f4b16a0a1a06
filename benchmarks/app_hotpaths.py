"""Hot paths of the social app on loopback: home-feed reads (fan-out + Redis) against the
pull-on-read SQL baseline in the same run, post creates, fan-out inserts per worker core.

    nice .venv/bin/python benchmarks/app_hotpaths.py [--accounts 20000] [--posts 200000]
        [--seconds 8] [--rounds 3]

Seeds accounts, a power-law follow graph, posts and upvotes (~20 per account) with COPY into a
fresh local PostgreSQL and Redis (app.devstack), serves the app with one uvicorn worker
pinned to core 0 and drives it with wrk pinned to core 1 (PostgreSQL and Redis float). Home feed
and pull-on-read baseline alternate in `--rounds` rounds in the same run, so that both see the
same machine load. Prints a table and writes benchmarks/results/app_hotpaths.json (read by the
capacity model). The full 100k-account / 1M-post benchmark is
`--accounts 100000 --posts 1000000`.

The machine is shared: besides wall-clock req/s (which depends on how much CPU the other users
leave), every run records the CPU time used by the app process, PostgreSQL and Redis, and derives
req/s per app CPU-second (`rps_per_app_core`: what one fully available app core serves) and CPU
milliseconds per request; the load average is recorded with each measurement.

PostgreSQL and Redis run with production durability (`--durability production`, the default:
fsync, full_page_writes and synchronous_commit on, Redis AOF with appendfsync everysec, as
roles/postgres and roles/redis deploy them); the results file starts with the run header
(benchmarks/resultsfile.py): commit, settings, and the durability the servers reported.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from cpumeter import CpuMeter  # noqa: E402 (kept importable from here too)
from delivery import measure_delivery  # noqa: E402
from resultsfile import write_results  # noqa: E402

from freehold.app.context import close_ctx, open_ctx  # noqa: E402
from freehold.app.db import migrate  # noqa: E402
from freehold.app.devstack import (  # noqa: E402
    DURABILITY,
    Redis,
    durability_of,
    free_port,
    local_stack,
    start_redis_cluster,
    wait_port,
)
from freehold.app.redis_client import close_redis, feed_key, make_redis  # noqa: E402
from freehold.app.seed import seed_dataset  # noqa: E402
from freehold.app.services import feed  # noqa: E402
from freehold.app.settings import Settings  # noqa: E402
from freehold.app.worker.fanout import fanout_post  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "app_hotpaths.json"


async def seed(dsn: str, n_acc: int, n_posts: int, mean_follows: float, readers: int
               ) -> tuple[list[int], list[str], dict[str, float]]:
    """The app's own seeder (app.seed, COPY), then sessions for the readers: ordinary
    accounts (below the most-followed tenth)."""
    rep = await seed_dataset(dsn, n_acc, posts_per_account=n_posts / n_acc,
                             mean_follows=mean_follows)
    rng = np.random.default_rng(42)
    conn = await asyncpg.connect(dsn)
    try:
        ordinary = [int(r["id"]) for r in await conn.fetch(
            "SELECT id FROM accounts ORDER BY followers_count DESC, id OFFSET $1", n_acc // 10)]
        reader_ids = [int(x) for x in rng.choice(ordinary, size=readers, replace=False)]
        tokens = [secrets.token_urlsafe(32) for _ in reader_ids]
        exp = datetime.now(UTC) + timedelta(days=1)
        await conn.copy_records_to_table(
            "sessions", columns=["token_hash", "account_id", "expires_at"],
            records=[(hashlib.sha256(t.encode()).digest(), a, exp)
                     for t, a in zip(tokens, reader_ids, strict=True)])
        stats = {"seed_seconds": rep["seconds"], "follows": rep["follows"],
                 "max_followers": rep["max_followers"],
                 "accounts_50k_followers": int(await conn.fetchval(
                     "SELECT count(*) FROM accounts WHERE followers_count >= 50000")),
                 "mean_follows": rep["mean_follows"], "seed_rows_per_s": rep["rows_per_s"],
                 "upvotes": rep["upvotes"],
                 "seed_note": "app.seed: COPY of accounts, follows (binary), posts and their "
                              "tags, upvotes (binary), counters, ANALYZE"}
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


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def _cache_feeds(r: object, ids: list[int]) -> None:
    """Every account gets a cached (empty) feed, so that every push lands."""
    pipe = r.pipeline(transaction=False)  # type: ignore[attr-defined]
    for i, a in enumerate(ids):
        pipe.rpush(feed_key(a), "0")
        if i % 5000 == 4999:
            await pipe.execute()
            pipe = r.pipeline(transaction=False)  # type: ignore[attr-defined]
    await pipe.execute()


async def bench_fanout(settings: Settings, pg_pid: int, redis_pid: int, cluster: list[Redis],
                       n_posts: int = 20) -> dict[str, object]:
    """Fan out real posts of the most-followed accounts into cached feeds of all accounts;
    inserts per second of wall time and per CPU-second of this (worker) process, on the single
    Redis (one Lua call per chunk) and on a local Redis Cluster of `cluster` masters (one
    script call per node per chunk: what production runs)."""
    ctx = await open_ctx(settings.replace(big_account_followers=10**9, fanout_chunk=2000))
    try:
        all_ids = [r["id"] for r in await ctx.db.fetch("SELECT id FROM accounts")]
        top = await ctx.db.fetch(
            "SELECT p.id, p.author_id FROM accounts a JOIN LATERAL (SELECT id, author_id FROM"
            " posts WHERE author_id = a.id ORDER BY id DESC LIMIT 1) p ON true"
            " ORDER BY a.followers_count DESC LIMIT $1", n_posts)
        out: dict[str, object] = {}
        for path in ("single", "cluster"):
            redis_pids: dict[str, int | list[int]] = {"redis": redis_pid}
            if path == "cluster":
                await close_redis(ctx.redis)
                ctx.settings = ctx.settings.replace(
                    redis_cluster=True, redis_url=f"redis://127.0.0.1:{cluster[0].port}/0")
                ctx.redis = make_redis(ctx.settings)
                redis_pids = {"redis": [n.proc.pid for n in cluster]}  # type: ignore[misc]
            await _cache_feeds(ctx.redis, all_ids)
            meter = CpuMeter(postgres=pg_pid, **redis_pids)
            la = load_average()
            meter.start()
            t0, c0 = time.perf_counter(), time.process_time()
            inserts = 0
            for r in top:
                inserts += await fanout_post(ctx, r["id"], r["author_id"])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            used = meter.stop()
            redis_cpu = used.get("redis", 0.0)
            res = {"fanout_posts": len(top), "fanout_inserts": inserts,
                   "fanout_inserts_per_s": round(inserts / wall),
                   "fanout_inserts_per_cpu_s": round(inserts / cpu),
                   "fanout_seconds": round(wall, 2),
                   "redis_cpu_us_per_insert": round(redis_cpu / inserts * 1e6, 2),
                   "postgres_cpu_us_per_insert": round(used.get("postgres", 0) / inserts * 1e6,
                                                       2),
                   "load_average": la}
            if path == "single":
                out.update(res)
            else:
                out["fanout_cluster"] = {**res, "redis_masters": len(cluster)}
        return out
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
        body: str | None = None, conns: int = 32, meter: CpuMeter | None = None
        ) -> dict[str, object]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % (", ".join(f'"{t}"' for t in tokens), method,
                           json.dumps(body) if body else "nil"))
        script = f.name
    la = load_average()
    if meter:
        meter.start()
    try:
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
                              "--latency", "-s", script, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    used = meter.stop() if meter else {}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    res: dict[str, object] = {"rps": round(rps), "p50_ms": pct("50"), "p99_ms": pct("99"),
                              "errors": int(non2xx.group(1)) if non2xx else 0,
                              "timeouts": int(timeouts.group(1)) if timeouts else 0,
                              "requests": n, "seconds": seconds, "load_average": la}
    if used and n:
        app = used.get("app", 0.0)
        res["app_cpu_util"] = round(app / used["wall_s"], 3)  # of the one pinned core
        res["rps_per_app_core"] = round(n / app) if app else None
        res["cpu_ms_per_request"] = {k: round(used.get(k, 0.0) / n * 1000, 3)
                                     for k in ("app", "postgres", "redis")}
    return res


def combine(rounds: list[dict[str, object]]) -> dict[str, object]:
    """One figure from alternating rounds: rates from the totals, the median round's
    latencies, the worst p99 too, and every round as measured."""
    n = sum(int(r["requests"]) for r in rounds)  # type: ignore[call-overload]
    secs = sum(int(r["seconds"]) for r in rounds)  # type: ignore[call-overload]
    out: dict[str, object] = {
        "rps": round(n / secs),
        "p50_ms": statistics.median(float(r["p50_ms"]) for r in rounds),  # type: ignore
        "p99_ms": statistics.median(float(r["p99_ms"]) for r in rounds),  # type: ignore
        "p99_ms_worst": max(float(r["p99_ms"]) for r in rounds),  # type: ignore[arg-type]
        "errors": sum(int(r["errors"]) for r in rounds),  # type: ignore[call-overload]
        "timeouts": sum(int(r["timeouts"]) for r in rounds),  # type: ignore[call-overload]
        "requests": n, "seconds": secs}
    timed = [r for r in rounds if "cpu_ms_per_request" in r]  # rounds that served requests
    if timed:
        m = sum(int(r["requests"]) for r in timed)  # type: ignore[call-overload]
        per = {k: sum(float(r["cpu_ms_per_request"][k])  # type: ignore[index]
                      * int(r["requests"]) for r in timed) / m  # type: ignore[call-overload]
               for k in ("app", "postgres", "redis")}
        out["cpu_ms_per_request"] = {k: round(v, 3) for k, v in per.items()}
        out["rps_per_app_core"] = round(1000 / per["app"]) if per["app"] else None
        out["app_cpu_util"] = round(statistics.mean(
            float(r["app_cpu_util"]) for r in timed), 3)  # type: ignore[arg-type]
    out["rounds"] = rounds
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20000)
    ap.add_argument("--posts", type=int, default=200000)
    ap.add_argument("--mean-follows", type=float, default=100)
    ap.add_argument("--readers", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--delivery-rate", type=float, default=50,
                    help="posts per second while delivery is timed (benchmarks/delivery.py)")
    ap.add_argument("--connections", type=int, default=16,
                    help="wrk connections on the feed reads (enough to keep the app core busy; "
                         "more only add queueing to the latencies)")
    ap.add_argument("--redis-cluster", action="store_true",
                    help="serve the feed, baseline and posts from a local Redis Cluster of two "
                         "masters (what production runs); writes app_hotpaths_cluster.json and "
                         "leaves out the fan-out part")
    ap.add_argument("--profile", metavar="SVG",
                    help="also record the app with py-spy during one home-feed run")
    ap.add_argument("--big-followers", type=int, default=0,
                    help="big-account threshold (default: accounts / 20, at least 1000)")
    ap.add_argument("--durability", choices=DURABILITY, default="production",
                    help="PostgreSQL and Redis durability (default production: fsync, "
                         "full_page_writes, synchronous_commit on, Redis AOF as roles/redis; "
                         "the capacity model reads this file)")
    args = ap.parse_args()
    from rich.console import Console

    console = Console()
    big_at = args.big_followers or max(1000, args.accounts // 20)
    with local_stack(durability=args.durability) as stack:
        pg, rd = stack["postgres"], stack["redis"]
        settings = Settings(database_url=pg.dsn, redis_url=rd.url,  # type: ignore[attr-defined]
                            rl_write_per_account=0, rl_write_per_ip=0, bench_endpoints=True,
                            big_account_followers=big_at, db_pool_min=4, db_pool_max=16,
                            secret_key=secrets.token_urlsafe(32))
        cluster: list[Redis] = []
        if args.redis_cluster:
            cluster = start_redis_cluster(stack["root"], nodes=2,  # type: ignore[arg-type]
                                          durability=args.durability)
            settings = settings.replace(redis_cluster=True,
                                        redis_url=f"redis://127.0.0.1:{cluster[0].port}/0")
        try:
            return measure(args, console, stack, settings, big_at, cluster)
        finally:
            for node in cluster:
                node.stop()


def batch_sizes(metrics_url: str) -> dict[str, float]:
    """Mean callers per coalesced round trip (app.batching), by batcher, since the app started
    (warm-up, home feed and baseline rounds)."""
    text = httpx.get(metrics_url, timeout=30).text
    got: dict[str, dict[str, float]] = {}
    for m in re.finditer(r'^freehold_batch_items_(sum|count)\{batcher="([^"]+)"\} (\S+)$', text,
                         re.M):
        got.setdefault(m[2], {})[m[1]] = float(m[3])
    return {k: round(v["sum"] / v["count"], 2) for k, v in got.items() if v.get("count")}


def feed_items(metrics_url: str) -> dict[str, float]:
    """Home-feed items kept in the app's memory vs made from rows the query sent whole
    (app.services.postjson), since the app started."""
    text = httpx.get(metrics_url, timeout=30).text
    got = {m[1]: float(m[2]) for m in re.finditer(
        r'^freehold_feed_items_total\{source="(\w+)"\} (\S+)$', text, re.M)}
    total = sum(got.values())
    return {**got, "kept_share": round(got.get("kept", 0) / total, 3) if total else 0.0}


def measure(args: argparse.Namespace, console: Any, stack: dict[str, object],
            settings: Settings, big_at: int, cluster: list[Redis]) -> int:
    """Seed, serve and measure (see the module doc); returns the exit code."""
    from rich.table import Table

    pg, rd = stack["postgres"], stack["redis"]
    redis_pids: int | list[int] = ([n.proc.pid for n in cluster]  # type: ignore[misc]
                                   if cluster else rd.proc.pid)  # type: ignore[attr-defined]
    durability = durability_of(pg, cluster or rd)  # type: ignore[arg-type]
    migrate(settings.database_url)
    with console.status("seeding with COPY…"):
        readers, tokens, stats = asyncio.run(
            seed(settings.database_url, args.accounts, args.posts, args.mean_follows,
                 args.readers))
    console.print(f"seeded {args.accounts} accounts, {stats['follows']} follows, "
                  f"{args.posts} posts in {stats['seed_seconds']} s "
                  f"({stats['seed_rows_per_s']} rows/s)")
    with console.status("warming feeds…"):
        asyncio.run(warm_feeds(settings, readers))
    port = free_port()
    env = {**os.environ, **settings.to_env()}
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "freehold.app.main:create_app",
         "--factory", "--port", str(port), "--workers", "1", "--log-level", "warning",
         "--no-access-log"], env=env, cwd=ROOT)
    meter = CpuMeter(app=server.pid, postgres=pg.proc.pid,  # type: ignore[attr-defined]
                     redis=redis_pids)
    results: dict[str, object] = {"accounts": args.accounts, "posts": args.posts, **stats,
                                  "big_account_followers": big_at,
                                  "big_head_ttl_ms": settings.big_head_ttl_ms,
                                  "feed_connections": args.connections}
    try:
        wait_port(port, timeout=900)  # a loaded machine can take minutes to import
        base = f"http://127.0.0.1:{port}/api/v1"
        home_url, pull_url = f"{base}/timelines/home?limit=40", \
            f"{base}/timelines/home_pull?limit=40"
        wrk(home_url, tokens, 3)  # warm-up: sessions, big-account lists, plans
        wrk(pull_url, tokens, 2)
        conns = args.connections
        if args.profile:
            spy = subprocess.Popen([
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                str(server.pid), "-o", args.profile, "--duration", str(args.seconds),
                "--nonblocking", "-f",
                "speedscope" if args.profile.endswith(".json") else "flamegraph"])
            wrk(home_url, tokens, args.seconds, conns=conns)
            spy.wait(timeout=args.seconds + 60)
        home: list[dict[str, object]] = []
        pull: list[dict[str, object]] = []
        for i in range(args.rounds):
            with console.status(f"home feed (fan-out), round {i + 1}…"):
                home.append(wrk(home_url, tokens, args.seconds, conns=conns, meter=meter))
            with console.status(f"home feed (pull-on-read baseline), round {i + 1}…"):
                pull.append(wrk(pull_url, tokens, args.seconds, conns=conns, meter=meter))
        results["home_feed"], results["pull_baseline"] = combine(home), combine(pull)
        results["batch_mean_items"] = batch_sizes(f"http://127.0.0.1:{port}/metrics")
        results["feed_items"] = feed_items(f"http://127.0.0.1:{port}/metrics")
        with console.status("post creates…"):
            results["post_create"] = wrk(f"{base}/posts", tokens, args.seconds, "POST",
                                         '{"body": "benchmark post %d #bench"}', conns=16,
                                         meter=meter)
        with console.status(f"fan-out delivery ({args.delivery_rate:g} posts/s)…"):
            results["delivery"] = measure_delivery(
                settings, base, home_url, tokens, wrk, rate=args.delivery_rate,
                seconds=args.seconds, log=Path(str(stack["root"])) / "fanout-worker.log")
    finally:
        server.terminate()
        server.wait(timeout=20)
    if not cluster:  # the fan-out is measured on both kinds in the single-Redis run
        with console.status("fan-out (single Redis, then a local Redis Cluster)…"):
            fan_cluster = start_redis_cluster(stack["root"], nodes=2,  # type: ignore[arg-type]
                                              durability=args.durability)
            try:
                results.update(asyncio.run(bench_fanout(
                    settings, pg.proc.pid, rd.proc.pid, fan_cluster)))  # type: ignore[attr-defined]
            finally:
                for node in fan_cluster:
                    node.stop()
    hf, pb = results["home_feed"], results["pull_baseline"]
    results["speedup_vs_pull"] = round(hf["rps"] / max(1, pb["rps"]), 1)  # type: ignore
    speed = [round(int(h["rps"]) / max(1, int(p["rps"])), 1)  # type: ignore[call-overload]
             for h, p in zip(hf["rounds"], pb["rounds"], strict=True)]  # type: ignore[index]
    results["speedup_vs_pull_per_round"] = speed
    tot = {k: sum(v["cpu_ms_per_request"].values()) for k, v in  # type: ignore[index, union-attr]
           (("home", hf), ("pull", pb)) if "cpu_ms_per_request" in v}  # type: ignore[operator]
    if len(tot) == 2 and tot["home"]:
        results["cpu_ms_per_request_total"] = {k: round(v, 3) for k, v in tot.items()}
        results["speedup_vs_pull_cpu"] = round(tot["pull"] / tot["home"], 1)
    results["home_feed_rps_per_app_core"] = hf.get("rps_per_app_core")  # type: ignore[union-attr]
    results["app_cores"] = 1
    results["load_average_end"] = load_average()
    results["cpus"] = os.cpu_count()
    results["measured_at"] = datetime.now(UTC).isoformat()
    results["notes"] = (
        "rps: wall-clock requests/s with the app pinned to one core, wrk on the other, "
        "PostgreSQL and Redis floating, on a machine shared with other engineers (see "
        "load_average); rps_per_app_core: requests per CPU-second of the app process; "
        "cpu_ms_per_request: CPU of app, PostgreSQL and Redis per request; "
        "speedup_vs_pull_cpu: total CPU per pull request / total CPU per home request; "
        "home feed and pull baseline both through app.api.fastpath (same HTTP path), "
        "feed_connections wrk connections, big_head_ttl_ms as set; "
        "fanout_*: this process pushing the newest post of the 20 most-followed accounts into "
        "every account's cached feed on the single Redis (one Lua call per chunk); "
        "fanout_cluster: the same on a local Redis Cluster of two masters (one script call per "
        "node per chunk); batch_mean_items: mean requests served by one coalesced Redis "
        "pipeline (redis_reads) and one PostgreSQL query (post_rows), app.batching; "
        "feed_items: page items taken from the app's memory (kept: their rows unchanged) or "
        "made from rows sent whole, over the whole run — the feed rounds write nothing, so "
        "they run on kept items; the mix calibration (locust_bench) has writes; "
        "delivery: a post's time from its POST until it is in a follower's cached feed (the "
        "Redis list home-feed reads start from), one fan-out worker process, home-feed reads "
        "(wrk, 4 connections) in the background (benchmarks/delivery.py)")
    results["feed_redis"] = f"local Redis Cluster of {len(cluster)} masters" if cluster \
        else "single Redis"
    table = Table(title=f"Freehold app hot paths (1 app core, loopback, {results['feed_redis']})")
    for col in ("path", "req/s", "req/s per app core", "p50 ms", "p99 ms", "CPU ms/req "
                "app+pg+redis", "non-2xx"):
        table.add_column(col)
    for name in ("home_feed", "pull_baseline", "post_create"):
        r = results[name]  # type: ignore[assignment]
        cpu = r.get("cpu_ms_per_request") or {}  # type: ignore[union-attr]
        table.add_row(name, str(r["rps"]), str(r.get("rps_per_app_core")),  # type: ignore
                      f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",  # type: ignore[index]
                      "+".join(f"{cpu.get(k, 0):.2f}" for k in ("app", "postgres", "redis")),
                      str(r["errors"]))  # type: ignore[index]
    console.print(table)
    console.print(f"home feed / pull baseline: {results['speedup_vs_pull']}× wall "
                  f"(per round {speed}), {results.get('speedup_vs_pull_cpu')}× CPU per request; "
                  f"load average {results['load_average_end']}")
    console.print(f"requests per coalesced round trip: {results['batch_mean_items']}")
    d = results["delivery"]
    console.print(f"delivery (post -> follower's cached feed, one fan-out worker, "
                  f"{d['rate_per_s']:g} posts/s, home feed reads in the background at "
                  f"{d['background_home_feed_rps']} req/s): p50 {d['p50_ms']} ms, "
                  f"p99 {d['p99_ms']} ms, max {d['max_ms']} ms, missed {d['missed']} of "
                  f"{d['posts']}")
    if "fanout_cluster" in results:
        console.print(f"fan-out: {results['fanout_inserts_per_s']} inserts/s wall, "
                      f"{results['fanout_inserts_per_cpu_s']} per worker CPU-second (Redis "
                      f"Cluster of 2: {results['fanout_cluster']['fanout_inserts_per_cpu_s']})")
    out = RESULTS.with_name("app_hotpaths_cluster.json") if cluster else RESULTS
    write_results(out, results, script=__file__, settings=vars(args), durability=durability)
    console.print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
