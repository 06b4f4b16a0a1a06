"""What clients read at start-up: instance v1/v2, custom emojis, preferences, markers, filters
(v1, v2), lists, announcements, trends (= discover), follow requests, bookmarks, and other
empty-but-valid lists of features Freehold does not have."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request

from freehold.app.api.deps import JSON, get_ctx
from freehold.app.mastodon import entities
from freehold.app.mastodon.deps import (
    Params,
    an_id,
    base,
    me,
    page,
    paged,
    params,
    render_statuses,
    scope,
    strings,
)
from freehold.app.redis_client import TRENDS_POSTS
from freehold.app.services import mastodon as store
from freehold.app.services import trends
from freehold.app.services.oauth import Grant

router = APIRouter()
P = Annotated[Params, Depends(params)]
FREEHOLD_VERSION = "0.1.0"
VERSION = f"4.3.0 (compatible; Freehold {FREEHOLD_VERSION})"
MIME_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"]
Read = Annotated[Grant, Depends(scope("read"))]


def _limits(request: Request) -> dict[str, Any]:
    s = get_ctx(request).settings
    return {
        "accounts": {"max_featured_tags": 0, "max_pinned_statuses": 0,
                     "max_profile_fields": 0, "max_display_name_length": 50,
                     "max_note_length": 500},
        "statuses": {"max_characters": s.post_max_chars,
                     "max_media_attachments": s.post_max_images,
                     "characters_reserved_per_url": 23},
        "media_attachments": {"supported_mime_types": MIME_TYPES,
                              "image_size_limit": s.media_max_bytes,
                              "image_matrix_limit": 33_177_600, "video_size_limit": 0,
                              "video_frame_rate_limit": 0, "video_matrix_limit": 0,
                              "description_limit": 1500},
        "polls": {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 300,
                  "max_expiration": 300},
    }


def _streaming(request: Request) -> str:
    b = base(request).base
    return ("wss://" + b[8:]) if b.startswith("https://") else ("ws://" + b[7:])


@router.get("/api/v1/instance")
async def instance_v1(request: Request) -> JSON:
    b = base(request)
    host = request.url.netloc
    ctx = get_ctx(request)
    users = await ctx.ro.fetchval("SELECT count(*) FROM accounts WHERE NOT loadtest")
    return JSON({
        "uri": host, "title": "Freehold", "short_description": "A Freehold social network",
        "description": "A Freehold social network", "email": "", "version": VERSION,
        "urls": {"streaming_api": _streaming(request)},
        "stats": {"user_count": int(users), "status_count": 0, "domain_count": 0},
        "thumbnail": b.default_avatar, "languages": ["en"], "registrations": True,
        "approval_required": False, "invites_enabled": False,
        "configuration": _limits(request), "contact_account": None, "rules": [],
    })


@router.get("/api/v2/instance")
async def instance_v2(request: Request) -> JSON:
    b = base(request)
    return JSON({
        "domain": request.url.netloc, "title": "Freehold", "version": VERSION,
        "source_url": "https://github.com/freehold/freehold",
        "description": "A Freehold social network",
        "usage": {"users": {"active_month": 0}},
        "thumbnail": {"url": b.default_avatar, "blurhash": None, "versions": {}},
        "icon": [{"src": b.default_avatar, "size": "192x192"}],
        "languages": ["en"],
        "configuration": {
            "urls": {"streaming": _streaming(request), "status": None,
                     "about": f"{b.base}/", "privacy_policy": None, "terms_of_service": None},
            "vapid": {"public_key": ""},
            **_limits(request),
            "translation": {"enabled": False},
            "timelines_access": {
                "live_feeds": {"local": "authenticated", "remote": "disabled"},
                "hashtag_feeds": {"local": "authenticated", "remote": "disabled"},
                "trending_link_feeds": {"local": "disabled", "remote": "disabled"}},
        },
        "registrations": {"enabled": True, "approval_required": False,
                          "reason_required": False, "message": None, "min_age": None,
                          "url": f"{b.base}/signup"},
        "api_versions": {"mastodon": 2},
        "contact": {"email": "", "account": None},
        "rules": [],
    })


@router.get("/api/v1/instance/peers")
@router.get("/api/v1/instance/rules")
@router.get("/api/v1/instance/domain_blocks")
@router.get("/api/v1/custom_emojis")
async def empty_public(request: Request) -> JSON:
    return JSON([])


@router.get("/api/v1/instance/activity")
async def activity(request: Request) -> JSON:
    return JSON([])


@router.get("/api/v1/preferences")
async def preferences(grant: Annotated[Grant, Depends(scope("read:accounts"))]) -> JSON:
    return JSON({"posting:default:visibility": "public", "posting:default:sensitive": False,
                 "posting:default:language": None, "reading:expand:media": "default",
                 "reading:expand:spoilers": False, "reading:autoplay:gifs": False})


@router.get("/api/v1/markers")
async def get_markers(request: Request, p: P,
                      grant: Annotated[Grant, Depends(scope("read:statuses"))]) -> JSON:
    wanted = [t for t in strings(p, "timeline") if t in ("home", "notifications")]
    rows = await store.markers(get_ctx(request), me(grant), wanted or ["home", "notifications"])
    return JSON({r["timeline"]: entities.marker(r) for r in rows})


@router.post("/api/v1/markers")
async def set_markers(request: Request, p: P,
                      grant: Annotated[Grant, Depends(scope("write:statuses", write=True))]
                      ) -> JSON:
    out = {}
    for tl in ("home", "notifications"):
        raw = p.get(tl) if isinstance(p.get(tl), dict) else None
        last = raw.get("last_read_id") if raw else p.get(f"{tl}[last_read_id]")
        if last is not None:
            row = await store.set_marker(get_ctx(request), me(grant), tl, an_id(last))
            out[tl] = entities.marker(row)
    return JSON(out)


@router.get("/api/v1/filters")
@router.get("/api/v2/filters")
@router.get("/api/v1/lists")
@router.get("/api/v1/announcements")
@router.get("/api/v1/follow_requests")
@router.get("/api/v1/bookmarks")
@router.get("/api/v1/conversations")
@router.get("/api/v1/scheduled_statuses")
@router.get("/api/v1/endorsements")
@router.get("/api/v1/featured_tags")
@router.get("/api/v1/followed_tags")
@router.get("/api/v1/domain_blocks")
@router.get("/api/v2/suggestions")
@router.get("/api/v1/suggestions")
@router.get("/api/v1/trends/links")
async def empty_lists(grant: Read) -> JSON:
    """Features Freehold does not have: an empty list, never a 404 (clients call these at
    start-up and some stop on a 404)."""
    return JSON([])


@router.get("/api/v1/trends")
@router.get("/api/v1/trends/tags")
async def trend_tags(request: Request, grant: Read) -> JSON:
    b = base(request)
    items = await trends.trending_tags(get_ctx(request))
    return JSON([entities.tag(b, t["tag"], t.get("posts"), t.get("accounts")) for t in items])


@router.get("/api/v1/trends/statuses")
async def trend_statuses(request: Request, p: P, grant: Read) -> JSON:
    ctx = get_ctx(request)
    raw = await ctx.redis.get(TRENDS_POSTS)
    ids = [int(i) for i in orjson.loads(raw)] if raw else []
    pg = page(p)
    ids = ids[:pg.limit]
    items = await render_statuses(ctx, request, me(grant), ids)
    return paged(request, items, [], pg.limit)
