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

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from freehold.app.batching import Batcher
from freehold.app.context import Ctx

EXPOSE = b"Link, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Idempotency-Key"
METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"


def _who(scope: dict[str, Any]) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return "t" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return "a" + (client[0] if client else "-")


def _counter(ctx: Ctx) -> Batcher[tuple[str, int], int]:
    b = ctx.batchers.get("masto_rl")
    if b is None:
        async def run(items: list[tuple[str, int]]) -> list[int]:
            pipe = ctx.redis.pipeline(transaction=False)
            for key, ttl in items:
                pipe.incr(key)
                pipe.expire(key, ttl, nx=True)
            res = await pipe.execute()
            return [int(c) for c in res[::2]]

        b = ctx.batchers["masto_rl"] = Batcher("masto_rl", run)
    return b


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
        s = ctx.settings
        now = time.time()
        window = max(1, s.masto_rate_window)
        slot = int(now // window)
        reset = datetime.fromtimestamp((slot + 1) * window, tz=UTC)
        count = await _counter(ctx)((f"rl:masto:{_who(scope)}:{slot}", window + 1))
        limit = s.masto_rate_limit
        extra = [(b"access-control-allow-origin", b"*"),
                 (b"access-control-expose-headers", EXPOSE),
                 (b"x-ratelimit-limit", str(limit).encode()),
                 (b"x-ratelimit-remaining", str(max(0, limit - count)).encode()),
                 (b"x-ratelimit-reset", reset.isoformat().replace("+00:00", "Z").encode())]
        if limit > 0 and count > limit:
            body = orjson.dumps({"error": "Too many requests"})
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(int((slot + 1) * window - now) + 1).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})
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
