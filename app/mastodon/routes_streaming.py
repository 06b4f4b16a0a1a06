"""The streaming API's routes (app.mastodon.streaming): SSE paths, the WebSocket, health."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from freehold.app.api.deps import JSON, get_ctx
from freehold.app.mastodon import entities
from freehold.app.mastodon.streaming import (
    SCOPES,
    SUBS_MAX,
    Conn,
    StreamRefused,
    admit,
    hub_of,
    refresh,
    sse_events,
    stream_label,
    sub_of,
)
from freehold.app.services import oauth

router = APIRouter()
SSE_PATHS = {"user": "user", "user/notification": "user:notification", "public": "public",
             "public/local": "public:local", "public/remote": "public:remote",
             "public/media": "public:media", "public/local/media": "public:local:media",
             "public/remote/media": "public:remote:media", "hashtag": "hashtag",
             "hashtag/local": "hashtag:local"}
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _base(scope: dict[str, Any], headers: Any, ctx: Any) -> entities.Base:
    host = headers.get("host") or "localhost"
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"),
                                                 scope.get("scheme", "http"))
    return entities.Base(f"{scheme}://{host}", ctx.settings.media_url_prefix)


async def _grant(ctx: Any, token: str | None, name: str) -> oauth.Grant:
    grant = await oauth.resolve(ctx, token)
    if grant is None or grant.account_id is None:
        raise StreamRefused(401, "Error: Missing access token" if not token
                            else "Error: Invalid access token")
    if not grant.allows(SCOPES.get(name, "read:statuses")):
        raise StreamRefused(403, "Error: Access token does not have the required scopes")
    return grant


def _token(headers: Any, query: Any) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()  # type: ignore[no-any-return]
    return query.get("access_token") or None  # type: ignore[no-any-return]


@router.get("/api/v1/streaming/health")
async def health() -> Response:
    return PlainTextResponse("OK")


@router.get("/api/v1/streaming/{path:path}")
async def sse(path: str, request: Request) -> Response:
    ctx = get_ctx(request)
    name = SSE_PATHS.get(path.strip("/"))
    try:
        if name is None:
            raise StreamRefused(404, "Unknown stream type")
        sub = sub_of(name, request.query_params.get("tag"))
        grant = await _grant(ctx, _token(request.headers, request.query_params), name)
        assert grant.account_id is not None
        conn = Conn(grant.account_id, _base(request.scope, request.headers, ctx), {sub})
        await admit(ctx, conn)
    except StreamRefused as exc:
        return JSON({"error": exc.message}, status_code=exc.status)
    return StreamingResponse(sse_events(ctx, hub_of(request.app), conn),
                             media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/api/v1/streaming")
async def sse_root(request: Request) -> Response:
    """`GET /api/v1/streaming?stream=…`: the stream named by the parameter, over SSE."""
    stream = request.query_params.get("stream", "")
    path = next((p for p, n in SSE_PATHS.items() if n == stream), None)
    if path is None:
        return JSON({"error": f"Unknown stream type: {stream}"}, status_code=400)
    return await sse(path, request)


@router.websocket("/api/v1/streaming")
async def websocket(ws: WebSocket) -> None:
    ctx = ws.app.state.ctx
    protocol = ws.headers.get("sec-websocket-protocol")
    token = _token(ws.headers, ws.query_params) or (protocol.split(",")[0].strip()
                                                    if protocol else None)
    first = ws.query_params.get("stream")
    try:
        grant = await _grant(ctx, token, first or "user")
        assert grant.account_id is not None
        conn = Conn(grant.account_id, _base(ws.scope, ws.headers, ctx), set())
        if first:
            conn.subs.add(sub_of(first, ws.query_params.get("tag")))
        await admit(ctx, conn)
    except StreamRefused as exc:
        await _deny(ws, exc)
        return
    except BaseException:
        await ws.close(code=1011)
        raise
    await ws.accept(subprotocol=protocol.split(",")[0].strip() if protocol and
                    not ws.headers.get("authorization") and
                    not ws.query_params.get("access_token") else None)
    hub = hub_of(ws.app)
    hub.join(conn)
    reader = asyncio.ensure_future(_commands(ws, ctx, grant, conn))
    try:
        await _writer(ws, ctx, conn, reader)
    finally:
        reader.cancel()
        hub.leave(conn)
        with contextlib.suppress(Exception):
            await ws.close()


async def _deny(ws: WebSocket, exc: StreamRefused) -> None:
    """Refuse before the handshake: an HTTP answer where the server can send one."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSON({"error": exc.message}, status_code=exc.status))
    else:
        await ws.close(code=4000 + exc.status, reason=exc.message[:120])


async def _writer(ws: WebSocket, ctx: Any, conn: Conn, reader: asyncio.Future[None]) -> None:
    beat = max(1, ctx.settings.masto_stream_heartbeat_s)
    next_beat = time.monotonic() + beat
    while not conn.overflowed and not reader.done():  # bounded by the connection's lifetime
        try:
            async with asyncio.timeout(max(0.0, next_beat - time.monotonic())):
                sub, event, payload = await conn.queue.get()
            if reader.done():
                break  # the client left (the reader's wake-up)
            await ws.send_text(orjson.dumps({"stream": stream_label(sub), "event": event,
                                             "payload": payload}).decode())
        except TimeoutError:
            pass
        if time.monotonic() >= next_beat:
            await refresh(ctx, conn)
            next_beat = time.monotonic() + beat


async def _commands(ws: WebSocket, ctx: Any, grant: oauth.Grant, conn: Conn) -> None:
    """The client's subscribe / unsubscribe messages (others are ignored, as Mastodon does);
    when the client leaves, wakes the writer up."""
    try:
        await _read_commands(ws, grant, conn)
    finally:
        with contextlib.suppress(asyncio.QueueFull):
            conn.queue.put_nowait((("", ""), "", ""))


async def _read_commands(ws: WebSocket, grant: oauth.Grant, conn: Conn) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:  # bounded by the connection's lifetime (a disconnect ends it)
            raw = await ws.receive_text()
            try:
                msg = orjson.loads(raw)
                if not isinstance(msg, dict) or msg.get("type") not in ("subscribe",
                                                                        "unsubscribe"):
                    continue
                sub = sub_of(msg.get("stream"), msg.get("tag"))
                if msg["type"] == "unsubscribe":
                    conn.subs.discard(sub)
                    continue
                if not grant.allows(SCOPES.get(sub[0], "read:statuses")):
                    raise StreamRefused(403, "Access token does not have the required scopes")
                if len(conn.subs) >= SUBS_MAX:
                    raise StreamRefused(400, f"At most {SUBS_MAX} streams on one connection")
                conn.subs.add(sub)
            except (orjson.JSONDecodeError, StreamRefused) as exc:
                error = exc.message if isinstance(exc, StreamRefused) else "Invalid JSON"
                await ws.send_text(orjson.dumps({"error": error, "status": getattr(
                    exc, "status", 400)}).decode())
