"""The home feed without the framework's layers: the one request every reader repeats.

`FeedApp` is the FastAPI app; it answers `GET /api/v1/timelines/home` itself when the request
is plain — a bearer token this process has seen (auth.session_hint), `limit` and `cursor` that
the route would accept — with the same bytes the route gives. Anything else, and any refusal on
the way (a session that changed, a bad cursor, an error), falls through to the FastAPI route,
which answers it as always: the route stays the one definition of the endpoint (OpenAPI,
validation, errors); this is only a shorter way to the same answer.
With `bench_endpoints`, the pull-on-read baseline (`/timelines/home_pull`) is served the same
way, so the two are compared through the same HTTP path.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import FastAPI

from freehold.app.dbretry import request_ended, request_started
from freehold.app.metrics import observe
from freehold.app.services import auth, feed
from freehold.app.services.errors import ServiceError
from freehold.app.unavailable import STORE_ERRORS

HOME = "/api/v1/timelines/home"
PULL = "/api/v1/timelines/home_pull"
CURSOR_RE = re.compile(feed.CURSOR_PATTERN)  # the route's `cursor` pattern
HEADERS = [(b"content-type", b"application/json")]


def page_args(query: bytes, page_max: int) -> tuple[int, str | None] | None:
    """(limit, cursor) when the query string is one the route takes as it is (a limit from 1
    to `page_max`, the settings' feed_page_max); else None."""
    limit, cursor = 40, None
    seen = set()
    for part in query.split(b"&") if query else ():
        name, _, value = part.partition(b"=")
        if name in seen:
            return None  # repeated: left to the framework
        seen.add(name)
        if name == b"limit":
            if not value.isdigit() or len(value) > 6 or not 1 <= int(value) <= page_max:
                return None
            limit = int(value)
        elif name == b"cursor":
            text = value.decode("ascii", "replace")
            if not CURSOR_RE.fullmatch(text):
                return None
            cursor = text
    return limit, cursor


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


class FeedApp(FastAPI):
    """The app, with the home feed answered before the framework's middleware and routing
    when the request is plain (see module doc); its latency is recorded as the route's."""

    fast_paths: tuple[str, ...] = (HOME,)
    # the Mastodon client API's app and the test of the requests it answers (app.mastodon)
    mastodon: Any = None
    mastodon_wants: Any = None
    db_retry_s: float = 0.0  # settings.db_retry_s: each request's database retries end then

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.db_retry_s <= 0:
            await self._route(scope, receive, send)
            return
        token = request_started(self.db_retry_s)
        try:
            await self._route(scope, receive, send)
        finally:
            request_ended(token)

    async def _route(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.mastodon is not None and scope["type"] in ("http", "websocket") and \
                self.mastodon_wants(scope):
            await self.mastodon(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "GET" and \
                scope["path"] in self.fast_paths:
            start = time.perf_counter()
            body = await self._answer(scope)
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*HEADERS, (b"content-length", b"%d" % len(body))]})
                await send({"type": "http.response.body", "body": body})
                observe("GET", scope["path"], 200, time.perf_counter() - start)
                return
        await super().__call__(scope, receive, send)

    async def _answer(self, scope: dict[str, Any]) -> bytes | None:
        ctx = getattr(self.state, "ctx", None)
        if ctx is None:
            return None  # not started yet: the framework answers
        args = page_args(scope["query_string"], ctx.settings.feed_page_max)
        token = bearer(scope["headers"])
        if args is None or token is None:
            return None
        limit, cursor = args
        try:
            if scope["path"] == HOME:
                hint = auth.session_hint(ctx, token)
                if hint is None:
                    return None
                return await feed.home_json(ctx, hint[1], limit=limit, cursor=cursor,
                                            session_key=hint[0])
            me = await auth.resolve(ctx, token)
            if me is None:
                return None
            return await feed.pull_json(ctx, me, limit)
        except (feed.SessionChanged, ServiceError, *STORE_ERRORS):
            return None  # the route answers it (a store unavailable: 503, a bug: 500)
