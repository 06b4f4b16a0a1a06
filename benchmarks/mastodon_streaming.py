"""Memory per idle streaming connection, and a post's delivery to every open stream, for
both transports: server-sent events and WebSocket.

    nice -n 10 .venv/bin/python benchmarks/mastodon_streaming.py [--connections 1000]

Seeds `--connections` accounts with an OAuth token each (app.seed, COPY). For each transport a
fresh app process (one uvicorn worker: the memory of one transport does not linger into the
other's figure) gets one stream of the public timeline per account, opened from this process:
SSE `GET /api/v1/streaming/public` on plain asyncio sockets, WebSocket
`/api/v1/streaming?stream=public` with the `websockets` client. The app process's resident
memory (VmRSS) is read before and after the streams are open and idle: memory per idle
connection = the difference / connections (the event-loop connection, the ASGI request or
WebSocket protocol state, the hub's Conn and its queue, the response task). Then one post is
made through the API and the time until each stream has its `update` event is taken (p50, p99,
max): the hub's one XREAD per process handing one post to every connection.

Writes benchmarks/results/mastodon_streaming.json under the run header.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
from mastodon_home import oauth_tokens
from resultsfile import write_results
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from freehold.app.db import migrate
from freehold.app.devstack import durability_of, free_port, local_stack, wait_port
from freehold.app.seed import seed_dataset
from freehold.app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mastodon_streaming.json"
TRANSPORTS = ("sse", "websocket")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_stream(port: int, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(f"GET /api/v1/streaming/public HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"stream refused: {head[:200]!r}")
    return reader, writer


async def until_update(reader: asyncio.StreamReader, marker: bytes, timeout: float) -> float:
    """Read until the event carrying `marker`: when it came (monotonic)."""
    async with asyncio.timeout(timeout):
        while True:  # bounded by the timeout
            block = await reader.readuntil(b"\n\n")
            if b"event: update" in block and marker in block:  # (chunked framing around)
                return time.monotonic()


async def open_ws(port: int, token: str) -> ClientConnection:
    return await ws_connect(f"ws://127.0.0.1:{port}/api/v1/streaming?stream=public",
                            additional_headers={"Authorization": f"Bearer {token}"},
                            open_timeout=120, ping_interval=None, max_queue=64)


async def until_ws_update(ws: ClientConnection, marker: bytes, timeout: float) -> float:
    async with asyncio.timeout(timeout):
        while True:  # bounded by the timeout
            msg = orjson.loads(await ws.recv())
            if msg.get("event") == "update" and marker.decode() in msg.get("payload", ""):
                return time.monotonic()


class Streams:
    """One transport's open streams: how to open one, wait for the marked post, close all."""

    def __init__(self, transport: str, port: int) -> None:
        self.transport, self.port = transport, port
        self.sse: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.ws: list[ClientConnection] = []

    async def open(self, token: str) -> None:
        if self.transport == "sse":
            self.sse.append(await open_stream(self.port, token))
        else:
            self.ws.append(await open_ws(self.port, token))

    def waits(self, marker: bytes) -> list[asyncio.Future[float]]:
        if self.transport == "sse":
            return [asyncio.ensure_future(until_update(r, marker, 60)) for r, _ in self.sse]
        return [asyncio.ensure_future(until_ws_update(w, marker, 60)) for w in self.ws]

    async def close(self) -> None:
        for _, w in self.sse:
            w.close()
        await asyncio.gather(*(w.close() for w in self.ws), return_exceptions=True)


async def measure(transport: str, port: int, pid: int, tokens: list[str], author_token: str,
                  settle: float) -> dict[str, object]:
    before = rss_kib(pid)
    streams = Streams(transport, port)
    for k in range(0, len(tokens), 50):  # 50 at a time: the server's accept backlog
        await asyncio.gather(*(streams.open(t) for t in tokens[k:k + 50]))
    await asyncio.sleep(settle)  # idle: heartbeats only
    after = rss_kib(pid)
    marker = secrets.token_hex(6).encode()
    async with httpx.AsyncClient(timeout=120) as web:
        waits = streams.waits(marker)
        sent = time.monotonic()
        r = await web.post(f"http://127.0.0.1:{port}/api/v1/statuses",
                           headers={"Authorization": f"Bearer {author_token}"},
                           json={"status": f"to every stream {marker.decode()}"})
        r.raise_for_status()
        got = await asyncio.gather(*waits, return_exceptions=True)
    delays = sorted((g - sent) * 1000 for g in got if isinstance(g, float))
    await streams.close()
    n = len(tokens)
    return {"connections": n, "rss_before_kib": before, "rss_idle_kib": after,
            "kib_per_idle_connection": round((after - before) / n, 2),
            "delivered": len(delays), "missed": n - len(delays),
            "delivery_p50_ms": round(statistics.median(delays), 1) if delays else None,
            "delivery_p99_ms": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 1)
            if delays else None,
            "delivery_max_ms": round(delays[-1], 1) if delays else None}


def serve_and_measure(transport: str, settings: Settings, tokens: list[str],
                      settle: float) -> dict[str, object]:
    """A fresh app process (one uvicorn worker) measured with one transport's streams."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "freehold.app.main:create_app", "--factory",
         "--port", str(port), "--workers", "1", "--log-level", "warning",
         "--no-access-log", "--timeout-graceful-shutdown", "5"],
        env={**os.environ, **settings.to_env()}, cwd=ROOT)
    try:
        wait_port(port, timeout=900)
        httpx.get(f"http://127.0.0.1:{port}/api/v1/instance", timeout=120)  # warm
        return asyncio.run(measure(transport, port, server.pid, tokens[1:], tokens[0], settle))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds the streams stay idle before memory is read")
    args = ap.parse_args()
    with local_stack(durability="production") as stack:
        pg, rd = stack["postgres"], stack["redis"]
        settings = Settings(database_url=pg.dsn, redis_url=rd.url,  # type: ignore[attr-defined]
                            rl_write_per_account=0, rl_write_per_ip=0,
                            masto_rate_limit=10**9, masto_stream_heartbeat_s=15,
                            db_pool_min=2, db_pool_max=8, secret_key=secrets.token_urlsafe(32))
        durability = durability_of(pg, rd)  # type: ignore[arg-type]
        migrate(settings.database_url)

        async def prepare() -> list[str]:
            await seed_dataset(settings.database_url, args.connections + 1,
                               posts_per_account=1, mean_follows=5)
            conn = await asyncpg.connect(settings.database_url)
            try:
                ids = [r["id"] for r in await conn.fetch(
                    "SELECT id FROM accounts ORDER BY id LIMIT $1", args.connections + 1)]
            finally:
                await conn.close()
            return await oauth_tokens(settings.database_url, ids, ("read", "write"))

        tokens = asyncio.run(prepare())
        results: dict[str, object] = {
            t: serve_and_measure(t, settings, tokens, args.settle) for t in TRANSPORTS}
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["measured_at"] = datetime.now(UTC).isoformat()
    results["notes"] = ("one uvicorn worker per transport, started fresh; streams of the "
                        "public timeline, one per account, opened from one client process; "
                        "kib_per_idle_connection: the app process's VmRSS growth / "
                        "connections after they idled")
    for t in TRANSPORTS:
        r = results[t]
        assert isinstance(r, dict)
        print(f"{t}: {r['connections']} idle streams: {r['kib_per_idle_connection']} KiB "
              f"each; one post delivered to {r['delivered']} of them: p50 "
              f"{r['delivery_p50_ms']} ms, p99 {r['delivery_p99_ms']} ms, max "
              f"{r['delivery_max_ms']} ms")
    write_results(RESULTS, results, script=__file__, settings=vars(args), durability=durability)
    return 0


if __name__ == "__main__":
    sys.exit(main())
