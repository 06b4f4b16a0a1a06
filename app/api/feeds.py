"""/api/v1: home feed, account and tag timelines, discover, search, notifications."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from freehold.app.api.deps import (
    JSON,
    JSONBytes,
    Limit,
    Viewer,
    Writer,
    bearer,
    get_ctx,
    page,
    path_id,
)
from freehold.app.api.models import MarkReadIn
from freehold.app.api.schemas import (
    AccountList,
    DocJSON,
    Marked,
    NotificationPage,
    PostList,
    PostPage,
    TagList,
    TrendingTags,
    UnreadCount,
    errors,
)
from freehold.app.services import auth, feed, notifications, search, trends

router = APIRouter(tags=["feeds"], default_response_class=DocJSON)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
Tag = Annotated[str, Path(max_length=65, pattern=r"^#?\w{1,64}$", description="a hashtag")]
Cursor = Annotated[str | None, Query(max_length=40, pattern=f"^{feed.CURSOR_PATTERN}$",
                                     description="next_cursor of the previous page")]


@router.get("/timelines/home", summary="Home feed: followed accounts, newest first",
            response_model=PostPage, responses=errors(401, 422))
async def home(request: Request, cred: Credentials, limit: Limit = 40, cursor: Cursor = None
               ) -> Response:
    # The hot path (app.api.fastpath answers most of these before routing): when this process
    # has seen the token, the session is checked inside the feed's own Redis round trip (one
    # round trip in all, not two); otherwise, or when that check fails, the usual
    # authentication runs first.
    ctx = get_ctx(request)
    token = cred.credentials if cred else None
    hint = auth.session_hint(ctx, token)
    if hint is not None:
        with contextlib.suppress(feed.SessionChanged):
            return JSONBytes(await feed.home_json(ctx, hint[1], limit=limit, cursor=cursor,
                                                  session_key=hint[0]))
    me = await auth.require(ctx, token)
    return JSONBytes(await feed.home_json(ctx, me, limit=limit, cursor=cursor))


@router.get("/accounts/{account_id}/posts", summary="An account's posts, newest first",
            response_model=PostPage, responses=errors(401, 403, 404, 422))
async def account_posts(account_id: str, request: Request, me: Viewer, limit: Limit = 40,
                        cursor: Cursor = None) -> JSON:
    # documents, not feed.page_bytes: an account's page is read by few, its items are seldom
    # kept, and postjson's two queries (keys, then rows) cost PostgreSQL more than hydrate's
    # one (mix_costs at 100k accounts: profile 0.431 -> 0.591 ms of PostgreSQL per request)
    return page(*await feed.account_posts(get_ctx(request), me, path_id(account_id, "account"),
                                          limit=limit, cursor=cursor))


@router.get("/tags/{tag}/posts", summary="Posts with a hashtag, newest first",
            response_model=PostPage, responses=errors(401, 404, 422))
async def tag_posts(tag: Tag, request: Request, me: Viewer, limit: Limit = 40,
                    cursor: Cursor = None) -> Response:
    ctx = get_ctx(request)
    return JSONBytes(await feed.page_bytes(ctx, me, await feed.tag_post_ids(
        ctx, tag, limit=limit, cursor=cursor)))


@router.get("/discover/latest", summary="Newest public posts", response_model=PostPage,
            responses=errors(401, 422))
async def latest(request: Request, me: Viewer, limit: Limit = 40,
                 cursor: Cursor = None) -> Response:
    ctx = get_ctx(request)
    return JSONBytes(await feed.page_bytes(ctx, me, await feed.latest_ids(
        ctx, limit=limit, cursor=cursor)))


@router.get("/discover/tags", summary="Trending hashtags (recent hours)",
            response_model=TrendingTags, responses=errors(401))
async def trending_tags(request: Request, me: Viewer) -> JSON:
    return JSON({"items": await trends.trending_tags(get_ctx(request))})


@router.get("/discover/posts", summary="Trending posts (recent hours)", response_model=PostList,
            responses=errors(401))
async def trending_posts(request: Request, me: Viewer) -> JSON:
    return JSON({"items": await trends.trending_posts(get_ctx(request), me)})


@router.get("/search/accounts", summary="Accounts by username or display-name prefix",
            response_model=AccountList, responses=errors(401, 422))
async def search_accounts(q: Annotated[str, Query(min_length=1, max_length=50)],
                          request: Request, me: Viewer,
                          limit: Annotated[int, Query(ge=1, le=50)] = 20) -> JSON:
    return JSON({"items": await search.accounts(get_ctx(request), me, q, limit)})


@router.get("/search/tags", summary="Hashtags by prefix", response_model=TagList,
            responses=errors(401, 422))
async def search_tags(q: Annotated[str, Query(min_length=1, max_length=50)], request: Request,
                      me: Viewer, limit: Annotated[int, Query(ge=1, le=50)] = 20) -> JSON:
    return JSON({"items": await search.tags(get_ctx(request), q, limit)})


@router.get("/notifications", summary="Notifications, newest first",
            response_model=NotificationPage, responses=errors(401, 422))
async def notes(request: Request, me: Viewer, limit: Limit = 40,
                cursor: Cursor = None) -> Response:
    return JSONBytes(await notifications.listing_json(get_ctx(request), me, limit=limit,
                                                      cursor=cursor))


@router.get("/notifications/unread_count", summary="Number of unread notifications",
            response_model=UnreadCount, responses=errors(401))
async def unread(request: Request, me: Viewer) -> JSON:
    return JSON({"unread": await notifications.unread_count(get_ctx(request), me)})


@router.post("/notifications/read", summary="Mark notifications read (all, or up to an id)",
             response_model=Marked, responses=errors(400, 401, 404, 422, 429))
async def mark_read(body: MarkReadIn, request: Request, me: Writer) -> JSON:
    up_to = path_id(body.up_to, "notification") if body.up_to else None
    return JSON({"marked": await notifications.mark_read(get_ctx(request), me, up_to)})


def add_pull_baseline(app: FastAPI) -> None:
    """The pull-on-read baseline for benchmarks: build the page with SQL from follows on every
    request (same auth, hydrate and JSON as the home feed). Off unless bench_endpoints."""

    async def home_pull(request: Request, me: Viewer, limit: Limit = 40) -> Response:
        return JSONBytes(await feed.pull_json(get_ctx(request), me, limit))

    app.add_api_route("/api/v1/timelines/home_pull", home_pull, methods=["GET"],
                      include_in_schema=False)
