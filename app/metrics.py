"""Prometheus metrics: request latency per route, plus queue depths and fan-out lag read at
scrape time. With several uvicorn workers set PROMETHEUS_MULTIPROC_DIR (app.serve does)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_mp
from redis.exceptions import RedisError, ResponseError

from freehold.app.context import Ctx
from freehold.app.redis_client import FANOUT_LAG, STREAM_EVENTS, STREAM_POSTS
from freehold.app.services.moderation import queue_depth

log = logging.getLogger("freehold.app.metrics")
API_PREFIX = "/api/v1"
REQUEST_SECONDS = Histogram(
    "freehold_http_request_duration_seconds", "HTTP request latency by route",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def _send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            if path[0] == "/" and not path.startswith(API_PREFIX) and \
                    scope["path"].startswith(API_PREFIX):
                path = API_PREFIX + path  # FastAPI reports the included router's own path
            observe(scope["method"], path, status[0], time.perf_counter() - start)


_SERIES: dict[tuple[str, str, int], Any] = {}  # (method, route, status) -> its histogram


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Record a request's latency. The labelled histogram is looked up once per series and
    kept (prometheus_client's `labels` takes a lock and builds its key on every call); the
    series are few (routes, not paths), and past 10,000 they are no longer kept."""
    series = _SERIES.get((method, route, status))
    if series is None:
        series = REQUEST_SECONDS.labels(method, route, str(status))
        if len(_SERIES) < 10_000:
            _SERIES[(method, route, status)] = series
    series.observe(seconds)


# what a live reading may meet when its store is down or answers otherwise than expected
READ_ERRORS = (RedisError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
UNREAD = "unreadable"  # the group label of a stream whose groups could not be read
NAN = float("nan")
T = TypeVar("T")


async def _reading(ok: Gauge, name: str, read: Awaitable[T]) -> T | None:
    """What `read` gives, with freehold_metric_read_ok{metric=name} 1; None (and 0, logged)
    when its store failed: the caller reports its series as NaN, never leaves them out."""
    try:
        value = await read
    except READ_ERRORS as exc:
        log.warning("metric %s not read: %s: %s", name, type(exc).__name__, exc)
        ok.labels(name).set(0)
        return None
    ok.labels(name).set(1)
    return value


async def render(ctx: Ctx) -> tuple[bytes, str]:
    """The process's metrics, plus live ones read now. A live metric whose store fails is not
    left out (its alerts could never fire): its series are NaN and freehold_metric_read_ok
    says 0 (alert AppMetricUnreadable)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        prom_mp.MultiProcessCollector(reg)
        body = generate_latest(reg)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    live = CollectorRegistry()
    ok = Gauge("freehold_metric_read_ok", "1: the live metric was read at this scrape; 0: its "
               "store failed and its series are NaN", ["metric"], registry=live)
    lag_g = Gauge("freehold_stream_lag", "entries not yet delivered to a consumer group",
                  ["stream", "group"], registry=live)
    pend_g = Gauge("freehold_stream_pending", "entries delivered but not acknowledged",
                   ["stream", "group"], registry=live)
    for stream in (STREAM_POSTS, STREAM_EVENTS):
        depths = await _reading(ok, stream, _stream_depths(ctx, stream))
        for group, behind, pending in depths if depths is not None else [(UNREAD, NAN, NAN)]:
            lag_g.labels(stream, group).set(behind)
            pend_g.labels(stream, group).set(pending)
    lag = await _reading(ok, "fanout_lag", _fanout_lag(ctx))
    Gauge("freehold_fanout_lag_seconds_last", "last fan-out batch: post age when pushed",
          registry=live).set(NAN if lag is None else lag)
    # the bare pool: a scrape reads the moment, it does not wait out an outage (app.dbretry)
    n, age = await _reading(ok, "moderation_queue", queue_depth(ctx.db.pool)) or (NAN, NAN)
    Gauge("freehold_moderation_queue_size", "open moderation cases", registry=live).set(n)
    Gauge("freehold_moderation_oldest_seconds", "age of the oldest open case",
          registry=live).set(age)
    return body + generate_latest(live), CONTENT_TYPE_LATEST


async def _fanout_lag(ctx: Ctx) -> float:
    return int(await ctx.redis.get(FANOUT_LAG) or 0) / 1000


async def _stream_depths(ctx: Ctx, stream: str) -> list[tuple[str, float, float]]:
    """(group, lag, pending) per consumer group of `stream`; none before the stream exists."""
    try:
        groups = await ctx.redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return []  # not created yet: nothing written, no group
    return [(g["name"], await _group_lag(ctx, stream, g), g.get("pending") or 0)
            for g in groups]


LAG_COUNT_MAX = 10_000


async def _group_lag(ctx: Any, stream: str, group: dict[str, Any]) -> int:
    """Entries of `stream` not yet delivered to `group`. Redis leaves its `lag` empty when it
    cannot tell (entries deleted or trimmed past the group's last delivered one: under a
    backlog, just when it matters), and 0 would hide the backlog: then count the entries
    after the last delivered one, up to LAG_COUNT_MAX."""
    if group.get("lag") is not None:
        return int(group["lag"])
    last = group.get("last-delivered-id") or "0-0"
    if isinstance(last, bytes):
        last = last.decode()
    return len(await ctx.redis.xrange(stream, f"({last}", "+", count=LAG_COUNT_MAX))
