"""Web pages: discover (trending tags and posts, newest posts), search, hashtag, notifications."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from freehold.app.api.deps import get_ctx
from freehold.app.services import feed, notifications, search, trends
from freehold.app.services.errors import NotFound, ServiceError
from freehold.app.web.render import render
from freehold.app.web.session import checked_form, require_viewer, safe_next, text_field

router = APIRouter(include_in_schema=False)
TAG_RE = re.compile(r"#?\w{1,64}")


@router.get("/discover")
async def discover(request: Request, cursor: str | None = None) -> Response:
    me = await require_viewer(request)
    ctx = get_ctx(request)
    tags = await trends.trending_tags(ctx) if not cursor else []
    hot = await trends.trending_posts(ctx, me.id) if not cursor else []
    latest, nxt = await feed.latest(ctx, me.id, limit=30, cursor=cursor or None)
    return await render(request, "discover.html", tags=tags, hot=hot, latest=latest,
                        next_cursor=nxt, first_page=not cursor)


@router.get("/search")
async def search_page(request: Request, q: str = "") -> Response:
    me = await require_viewer(request)
    ctx = get_ctx(request)
    q = q.strip()[:50]
    people: list[dict[str, object]] = []
    tags: list[dict[str, object]] = []
    error = None
    if q:
        try:
            if not q.startswith("#"):
                people = await search.accounts(ctx, me.id, q, 20)
            if not q.startswith("@"):
                tags = await search.tags(ctx, q, 20)
        except ServiceError as exc:
            error = exc
    return await render(request, "search.html", 422 if error else 200, q=q, people=people,
                        tags=tags, error=error)


@router.get("/tag/{tag}")
async def tag_page(tag: str, request: Request, cursor: str | None = None) -> Response:
    me = await require_viewer(request)
    if not TAG_RE.fullmatch(tag):
        raise NotFound("no such hashtag")
    items, nxt = await feed.tag_posts(get_ctx(request), me.id, tag, limit=30,
                                      cursor=cursor or None)
    return await render(request, "tag.html", tag=tag.lstrip("#").lower()[:64], posts=items,
                        next_cursor=nxt)


@router.get("/notifications")
async def notes(request: Request, cursor: str | None = None) -> Response:
    me = await require_viewer(request)
    items, nxt = await notifications.listing(get_ctx(request), me.id, limit=40,
                                             cursor=cursor or None)
    return await render(request, "notifications.html", items=items, next_cursor=nxt)


@router.post("/notifications/read")
async def mark_read(request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    await notifications.mark_read(get_ctx(request), me.id, None)
    return RedirectResponse(safe_next(text_field(form, "next"), "/notifications"),
                            status_code=303)
