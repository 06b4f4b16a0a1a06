"""The Mastodon API's middleware: CORS for browser clients and Mastodon's rate-limit headers.

- A CORS preflight (OPTIONS with Access-Control-Request-Method) is answered here, for any
  origin; every other answer carries `Access-Control-Allow-Origin: *` and exposes Link and
  the X-RateLimit-* headers (no cookies are read: tokens travel in Authorization).
- A path's trailing slash is dropped before routing (the same route answers; no redirects).
- Each request counts in a fixed window per access token (per client address without one):
  X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (when the window ends,
  ISO 8601) on every answer, 429 past the limit (settings.masto_rate_limit per
  masto_rate_window seconds; Mastodon's default is 300 per 5 minutes). The counts of
  concurrent requests go to Redis in one pipeline (app.batching).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisClusterException

from freehold.app.batching import Batcher
from freehold.app.context import Ctx
from freehold.app.redis_wire import Command, Redirected

EXPOSE = b"Link, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Idempotency-Key"
METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"


def _who(scope: dict[str, Any]) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return "t" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return "a" + (client[0] if client else "-")


def _counter(ctx: Ctx) -> Batcher[tuple[str, int, str | None], tuple[int, Any]]:
    """Counts of concurrent requests in one pipeline: an item is (counter key, its time to live,
    a key to GET in the same round trip or None), its result (the count, the GET's answer)."""
    b = ctx.batchers.get("masto_rl")
    if b is None:
        async def run(items: list[tuple[str, int, str | None]]) -> list[tuple[int, Any]]:
            cmds: list[Command] = []
            for key, ttl, also in items:
                cmds += [("incr", key), ("expire", key, ttl, "NX")]
                if also is not None:
                    cmds.append(("get", also))
            res: list[Any] | None = None
            wire = ctx.reads.wire  # raw connections (app.redis_wire): a fraction of redis-py's
            if wire is not None:  # cost; a retry after a lost connection may count twice
                with contextlib.suppress(Redirected, RedisClusterException):
                    res = await wire.execute(cmds)
            if res is None:
                pipe = ctx.redis.pipeline(transaction=False)
                for c in cmds:
                    getattr(pipe, c[0])(*c[1:])
                res = await pipe.execute()
            bad = next((r for r in res if isinstance(r, Exception)), None)
            if bad is not None:
                raise bad
            out: list[tuple[int, Any]] = []
            at = 0
            for _, _, also in items:
                out.append((int(res[at]), res[at + 2] if also is not None else None))
                at += 3 if also is not None else 2
            return out

        b = ctx.batchers["masto_rl"] = Batcher("masto_rl", run)
    return b


Answer = Callable[[Any], Awaitable[None]]
COUNTED = "freehold.masto_rl"  # scope key: the request was counted already (its headers)


def window(ctx: Ctx, scope: dict[str, Any]) -> tuple[str, int, float, int]:
    """(the counter's Redis key, its time to live, now, the window's end) of a request."""
    w = max(1, ctx.settings.masto_rate_window)
    now = time.time()
    slot = int(now // w)
    return f"rl:masto:{_who(scope)}:{slot}", w + 1, now, (slot + 1) * w


def limit_headers(ctx: Ctx, count: int, now: float, end: int
                  ) -> tuple[list[tuple[bytes, bytes]], Answer | None]:
    """(the CORS and X-RateLimit-* headers of an answer, the 429 answer when `count` is past
    the limit)."""
    limit = ctx.settings.masto_rate_limit
    reset = datetime.fromtimestamp(end, tz=UTC)
    extra = [(b"access-control-allow-origin", b"*"),
             (b"access-control-expose-headers", EXPOSE),
             (b"x-ratelimit-limit", str(limit).encode()),
             (b"x-ratelimit-remaining", str(max(0, limit - count)).encode()),
             (b"x-ratelimit-reset", reset.isoformat().replace("+00:00", "Z").encode())]
    if limit <= 0 or count <= limit:
        return extra, None

    async def refuse(send: Any) -> None:
        body = orjson.dumps({"error": "Too many requests"})
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(int(end - now) + 1).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})

    return extra, refuse


async def count(ctx: Ctx, scope: dict[str, Any], also: str | None = None
                ) -> tuple[list[tuple[bytes, bytes]], Answer | None, Any]:
    """Count a request in its window: (its headers, the 429 answer past the limit, the value
    of the key `also` read in the same round trip)."""
    counted = scope.get(COUNTED)
    if counted is not None:
        return (*counted, None)
    key, ttl, now, end = window(ctx, scope)
    n, got = await _counter(ctx)((key, ttl, also))
    extra, refusal = limit_headers(ctx, n, now, end)
    scope[COUNTED] = (extra, refusal)
    return extra, refusal, got


class MastodonMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # a trailing slash is the same route, answered, never redirected (Mastodon.py asks
            # for /api/v2/instance/)
            scope = {**scope, "path": path.rstrip("/") or "/"}
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(headers, send)
            return
        ctx: Ctx = scope["app"].state.ctx
        extra, refusal, _ = await count(ctx, scope)
        if refusal is not None:
            await refusal(send)
            return

        async def _send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, _send)

    async def _preflight(self, headers: dict[bytes, bytes], send: Any) -> None:
        asked = headers.get(b"access-control-request-headers", b"")
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", METHODS),
            (b"access-control-allow-headers", asked or b"Authorization, Content-Type"),
            (b"access-control-expose-headers", EXPOSE),
            (b"access-control-max-age", b"86400"), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
