"""Timelines (home from the fanned-out feed, public, tag, list), notifications and search v2."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from freehold.app.api.deps import JSON, get_ctx
from freehold.app.context import Ctx
from freehold.app.mastodon import entities
from freehold.app.mastodon.deps import (
    Params,
    an_id,
    base,
    flag,
    me,
    page,
    paged,
    params,
    render_accounts,
    render_statuses,
    scope,
    strings,
    text,
)
from freehold.app.services import feed, notifications, search
from freehold.app.services import mastodon as store
from freehold.app.services.errors import Invalid
from freehold.app.services.oauth import Grant

router = APIRouter()
P = Annotated[Params, Depends(params)]
ReadStatuses = Annotated[Grant, Depends(scope("read:statuses"))]
ReadNotifications = Annotated[Grant, Depends(scope("read:notifications"))]
WriteNotifications = Annotated[Grant, Depends(scope("write:notifications", write=True))]
ReadSearch = Annotated[Grant, Depends(scope("read:search"))]
HOME_ROUNDS = 10  # pages of the feed read at most for a since_id / min_id request


async def home_page_ids(ctx: Ctx, account_id: int, pg: store.Page) -> list[int]:
    """A home page's ids from the fanned-out feed (app.services.feed), newest first."""
    lo = max(pg.since_id or 0, pg.min_id or 0)
    if not lo:
        ids, _ = await feed.home_ids(ctx, account_id, pg.limit,
                                     str(pg.max_id) if pg.max_id else None)
        return ids
    # newer than lo: read down from the top (or max_id) until past lo; bounded in rounds
    got: list[int] = []
    cursor = str(pg.max_id) if pg.max_id else None
    step = min(100, ctx.settings.feed_page_max)
    for _ in range(HOME_ROUNDS):
        ids, cursor = await feed.home_ids(ctx, account_id, step, cursor)
        got += [i for i in ids if i > lo]
        if not cursor or not ids or ids[-1] <= lo:
            break
    return got[-pg.limit:] if pg.min_id else got[:pg.limit]


@router.get("/api/v1/timelines/home")
async def home(request: Request, p: P, grant: ReadStatuses) -> JSON:
    ctx = get_ctx(request)
    pg = page(p)
    ids = await home_page_ids(ctx, me(grant), pg)
    return paged(request, await render_statuses(ctx, request, me(grant), ids), ids, pg.limit)


@router.get("/api/v1/timelines/public")
async def public(request: Request, p: P, grant: ReadStatuses) -> JSON:
    ctx = get_ctx(request)
    pg = page(p)
    if flag(p, "remote"):
        return paged(request, [], [], pg.limit)  # no federation: nothing remote
    ids = await store.public_ids(ctx, pg, flag(p, "only_media"))
    return paged(request, await render_statuses(ctx, request, me(grant), ids), ids, pg.limit)


@router.get("/api/v1/timelines/tag/{hashtag}")
async def tag_timeline(hashtag: str, request: Request, p: P, grant: ReadStatuses) -> JSON:
    ctx = get_ctx(request)
    pg = page(p)
    if flag(p, "remote"):
        return paged(request, [], [], pg.limit)
    ids = await store.tag_ids(ctx, hashtag, pg)
    return paged(request, await render_statuses(ctx, request, me(grant), ids), ids, pg.limit)


@router.get("/api/v1/timelines/list/{list_id}")
async def list_timeline(list_id: str, grant: ReadStatuses) -> JSON:
    return JSON([])  # no lists in Freehold


async def _notification_docs(ctx: Ctx, request: Request, viewer: int, rows: list[Any]
                             ) -> list[dict[str, Any]]:
    statuses = {int(s["id"]): s for s in await render_statuses(
        ctx, request, viewer, [r["status_id"] for r in rows if r["status_id"]], pool=ctx.db)}
    actors = await store.accounts_by_id(ctx, {r["actor_id"] for r in rows}, ctx.db)
    b = base(request)
    out = []
    for r in rows:
        status = statuses.get(r["status_id"]) if r["status_id"] else None
        if r["actor_id"] not in actors or (r["status_id"] and status is None):
            continue  # its status is gone or not visible: left out, as Mastodon does
        out.append(entities.notification(r, entities.account(b, actors[r["actor_id"]]),
                                         status))
    return out


@router.get("/api/v1/notifications")
async def notes(request: Request, p: P, grant: ReadNotifications) -> JSON:
    ctx = get_ctx(request)
    pg = page(p, 40, 80)
    kinds = store.kinds_for(strings(p, "types"), strings(p, "exclude_types"))
    who = an_id(p["account_id"]) if p.get("account_id") else None
    rows = await store.notifications(ctx, me(grant), pg, kinds, who)
    ids = [r["id"] for r in rows]
    return paged(request, await _notification_docs(ctx, request, me(grant), rows), ids,
                 pg.limit)


@router.get("/api/v1/notifications/unread_count")
async def unread_count(request: Request, grant: ReadNotifications) -> JSON:
    return JSON({"count": await notifications.unread_count(get_ctx(request), me(grant))})


@router.get("/api/v1/notifications/{notification_id}")
async def one_note(notification_id: str, request: Request, grant: ReadNotifications) -> JSON:
    ctx = get_ctx(request)
    row = await store.notification(ctx, me(grant), an_id(notification_id))
    docs = await _notification_docs(ctx, request, me(grant), [row])
    if not docs:
        raise store.NotFound("Record not found")
    return JSON(docs[0])


@router.post("/api/v1/notifications/clear")
async def clear(request: Request, grant: WriteNotifications) -> JSON:
    await store.dismiss(get_ctx(request), me(grant), None)
    return JSON({})


@router.post("/api/v1/notifications/{notification_id}/dismiss")
async def dismiss(notification_id: str, request: Request, grant: WriteNotifications) -> JSON:
    await store.dismiss(get_ctx(request), me(grant), an_id(notification_id))
    return JSON({})


@router.post("/api/v1/notifications/dismiss")
async def dismiss_v1(request: Request, p: P, grant: WriteNotifications) -> JSON:
    await store.dismiss(get_ctx(request), me(grant), an_id(p.get("id")))
    return JSON({})


@router.get("/api/v2/search")
async def search_v2(request: Request, p: P, grant: ReadSearch) -> JSON:
    ctx = get_ctx(request)
    q = (text(p, "q") or "").strip()
    if not q:
        raise Invalid("q: what to search for", field="q")
    kind = text(p, "type")
    limit = page(p, 20, 40).limit
    offset = p.get("offset")
    out: dict[str, list[Any]] = {"accounts": [], "statuses": [], "hashtags": []}
    if offset not in (None, "", "0", 0):
        return JSON(out)  # one page of each: the search has no offsets
    word = q.lstrip("@#").split("@")[0]
    if kind in (None, "accounts") and word and not q.startswith("#"):
        found = await search.accounts(ctx, me(grant), word[:50], limit)
        out["accounts"] = await render_accounts(ctx, request, [int(a["id"]) for a in found])
    if kind in (None, "hashtags") and word and not q.startswith("@"):
        b = base(request)
        out["hashtags"] = [entities.tag(b, t["tag"], t["uses"])
                           for t in await search.tags(ctx, word[:50], limit)]
    if kind in (None, "statuses"):
        ids = await store.search_status_ids(ctx, q, limit)
        out["statuses"] = await render_statuses(ctx, request, me(grant), ids)
    return JSON(out)


@router.get("/api/v1/tags/{name}")
async def get_tag(name: str, request: Request, grant: ReadStatuses) -> JSON:
    ctx = get_ctx(request)
    tag = name.lstrip("#").lower()[:64]
    uses = await ctx.ro.fetchval("SELECT uses FROM tags WHERE tag = $1", tag)
    if uses is None:
        raise store.NotFound("Record not found")
    return JSON(entities.tag(base(request), tag, int(uses)))
