"""Operational routes beside the API: /healthz (the process is up), /readyz (PostgreSQL and
Redis reachable; HAProxy and DNS health checks read it), /metrics (Prometheus) and the media
proxy /media/{kind}/{name}."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from freehold.app import metrics, unavailable
from freehold.app.api.deps import JSON, get_ctx
from freehold.app.api.schemas import DocJSON, Health, Readiness, errors
from freehold.app.services.errors import NotFound
from freehold.app.services.media import CONTENT_TYPES

MEDIA_KINDS = ("media", "avatars")
router = APIRouter(tags=["operations"])


async def readiness(probe: Awaitable[Any]) -> str:
    """"ok", or "down: <exception>" when the store is unavailable (app.unavailable); any other
    exception, a bug, is raised (a 500: not ready either, with its traceback logged)."""
    try:
        await probe
    except unavailable.STORE_ERRORS as exc:
        if unavailable.store_of(exc) is None:
            raise
        return f"down: {type(exc).__name__}"
    return "ok"


@router.get("/healthz", summary="The process is up", response_class=DocJSON,
            response_model=Health)
async def healthz() -> JSON:
    return JSON({"status": "ok"})


@router.get("/readyz", summary="PostgreSQL and Redis reachable", response_class=DocJSON,
            response_model=Readiness,
            responses={503: {"model": Readiness, "description": "One of them is down"}})
async def readyz(request: Request) -> JSON:
    ctx = get_ctx(request)
    # the bare pool: a probe reports the moment, it does not wait out an outage (app.dbretry)
    checks = {"postgres": await readiness(ctx.db.pool.fetchval("SELECT 1")),
              "redis": await readiness(ctx.redis.ping())}
    ok = all(v == "ok" for v in checks.values())
    return JSON({"status": "ok" if ok else "unavailable", **checks},
                status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def prom(request: Request) -> Response:
    body, ctype = await metrics.render(get_ctx(request))
    return Response(body, media_type=ctype)


@router.get("/media/{kind}/{name}", summary="An uploaded image", response_class=Response,
            responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                                         for t in CONTENT_TYPES.values()}},
                       **errors(404, 422, 503)})
async def media(kind: str, name: str, request: Request) -> Response:
    ctx = get_ctx(request)
    if kind not in MEDIA_KINDS or ctx.media is None or "/" in name or len(name) > 40:
        raise NotFound("no such media")
    ext = name.rsplit(".", 1)[-1]
    ctype = CONTENT_TYPES.get(ext)
    if ctype is None:
        raise NotFound("no such media")
    data = await ctx.media.get(f"{kind}/{name}")
    return Response(data, media_type=ctype,
                    headers={"Cache-Control": "public, max-age=31536000, immutable",
                             "X-Content-Type-Options": "nosniff"})
