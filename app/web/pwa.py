"""The installable web app: manifest, icons, the service worker (/sw.js, root scope) and the
offline page. The service worker caches only the shell (CSS, JS, icons, offline page); pages
are always fetched from the network and never cached (they belong to a logged-in user)."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from freehold.app.services.errors import NotFound
from freehold.app.web.icons import SIZES, THEME, icon_png
from freehold.app.web.render import STATIC, env, security_headers, static_version

router = APIRouter(include_in_schema=False)
THEME_HEX = "#{:02x}{:02x}{:02x}".format(*THEME)


def shell_urls() -> list[str]:
    v = static_version()
    return [f"/static/app.css?v={v}", f"/static/app.js?v={v}", "/offline",
            *(f"/icons/icon-{s}.png" for s in SIZES)]


@router.get("/manifest.webmanifest")
async def manifest() -> Response:
    doc = {
        "name": "Freehold", "short_name": "Freehold",
        "description": "A social network that runs on servers its community controls.",
        "start_url": "/", "scope": "/", "display": "standalone", "orientation": "portrait",
        "background_color": "#ffffff", "theme_color": THEME_HEX,
        "icons": [*({"src": f"/icons/icon-{s}.png", "sizes": f"{s}x{s}", "type": "image/png",
                     "purpose": "any"} for s in SIZES),
                  *({"src": f"/icons/maskable-{s}.png", "sizes": f"{s}x{s}",
                     "type": "image/png", "purpose": "maskable"} for s in SIZES)],
    }
    return Response(orjson.dumps(doc), media_type="application/manifest+json",
                    headers={"Cache-Control": "public, max-age=3600"})


async def _icon(size: int, maskable: bool) -> Response:
    if size not in SIZES:
        raise NotFound("no such icon")
    data = await asyncio.to_thread(icon_png, size, maskable)
    return Response(data, media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/icons/icon-{size}.png")
async def icon(size: int) -> Response:
    return await _icon(size, False)


@router.get("/icons/maskable-{size}.png")
async def maskable(size: int) -> Response:
    return await _icon(size, True)


@router.get("/sw.js")
async def service_worker() -> Response:
    body = (STATIC / "sw.js").read_text()
    body = body.replace("__VERSION__", static_version()).replace(
        "__SHELL__", orjson.dumps(shell_urls()).decode())
    return Response(body, media_type="application/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


@router.get("/offline")
async def offline(request: Request) -> Response:
    html = env().get_template("offline.html").render(request=request, me=None, csrf="",
                                                     here="/offline")
    response = HTMLResponse(html, headers={"Cache-Control": "public, max-age=3600"})
    security_headers(request, response, private=False)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
