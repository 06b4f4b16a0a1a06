"""Statuses (create with Idempotency-Key, get, delete, context, favourite = upvote, reblog =
echo, favourited_by, reblogged_by), media (POST /api/v2/media, GET/PUT /api/v1/media/:id) and
reports (→ the jury queue)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from freehold.app.api.deps import JSON, get_ctx
from freehold.app.context import Ctx
from freehold.app.mastodon import entities
from freehold.app.mastodon.deps import (
    Params,
    an_id,
    base,
    file,
    me,
    page,
    paged,
    params,
    render_accounts,
    render_status,
    render_statuses,
    scope,
    strings,
    text,
)
from freehold.app.services import mastodon as store
from freehold.app.services import moderation, posts
from freehold.app.services.errors import Conflict, Invalid
from freehold.app.services.oauth import Grant

router = APIRouter()
P = Annotated[Params, Depends(params)]
ReadStatuses = Annotated[Grant, Depends(scope("read:statuses"))]
ReadAccounts = Annotated[Grant, Depends(scope("read:accounts"))]
WriteStatuses = Annotated[Grant, Depends(scope("write:statuses", write=True))]
WriteFavourites = Annotated[Grant, Depends(scope("write:favourites", write=True))]
WriteMedia = Annotated[Grant, Depends(scope("write:media", write=True))]
WriteReports = Annotated[Grant, Depends(scope("write:reports", write=True))]
IDEMPOTENCY_TTL_S = 3600
IDEMPOTENCY_WAIT_S = 10.0
# Mastodon's report categories → the jury queue's reasons
CATEGORIES = {"spam": "spam", "legal": "illegal", "violation": "harassment", "other": "other"}


async def _idempotent(ctx: Ctx, account_id: int, key: str | None) -> tuple[str | None, int | None]:
    """(the Redis key holding this Idempotency-Key's status, the status it made already)."""
    if not key:
        return None, None
    rkey = f"masto:idem:{account_id}:{hashlib.sha256(key.encode()).hexdigest()}"
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_S
    while True:  # bounded: until the first request with this key has made its status
        if await ctx.redis.set(rkey, "-", nx=True, ex=IDEMPOTENCY_TTL_S):
            return rkey, None  # ours to make
        got = await ctx.redis.get(rkey)
        if got and got != "-":
            return rkey, int(got)
        if time.monotonic() > deadline:
            raise Conflict("a request with this Idempotency-Key is still being processed")
        await asyncio.sleep(0.05)


@router.post("/api/v1/statuses")
async def create_status(request: Request, p: P, grant: WriteStatuses) -> JSON:
    ctx = get_ctx(request)
    if p.get("poll"):
        raise Invalid("poll: Freehold has no polls", field="poll")
    if p.get("scheduled_at"):
        raise Invalid("scheduled_at: Freehold does not schedule posts", field="scheduled_at")
    rkey, done = await _idempotent(ctx, me(grant), request.headers.get("idempotency-key"))
    if done is not None:
        return JSON(await render_status(ctx, request, me(grant), done))
    try:
        doc = await posts.create_post(ctx, me(grant), text(p, "status") or "",
                                      reply_to=text(p, "in_reply_to_id") or None,
                                      media_ids=strings(p, "media_ids"))
    except BaseException:
        if rkey:
            await ctx.redis.delete(rkey)
        raise
    if rkey:
        await ctx.redis.set(rkey, doc["id"], ex=IDEMPOTENCY_TTL_S)
    return JSON(await render_status(ctx, request, me(grant), int(doc["id"])))


@router.get("/api/v1/statuses/{status_id}")
async def get_status(status_id: str, request: Request, grant: ReadStatuses) -> JSON:
    return JSON(await render_status(get_ctx(request), request, me(grant), an_id(status_id)))


@router.delete("/api/v1/statuses/{status_id}")
async def delete_status(status_id: str, request: Request, grant: WriteStatuses) -> JSON:
    ctx = get_ctx(request)
    sid = an_id(status_id)
    doc = await render_status(ctx, request, me(grant), sid, text=True)
    await posts.delete_post(ctx, me(grant), sid)
    return JSON(doc)


@router.get("/api/v1/statuses/{status_id}/context")
async def context(status_id: str, request: Request, grant: ReadStatuses) -> JSON:
    ctx = get_ctx(request)
    sid = an_id(status_id)
    await render_status(ctx, request, me(grant), sid)  # 404 when not visible
    up, down = await store.context_ids(ctx, sid)
    return JSON({"ancestors": await render_statuses(ctx, request, me(grant), up),
                 "descendants": await render_statuses(ctx, request, me(grant), down)})


async def _target(ctx: Ctx, sid: int) -> int:
    """The post an action on `sid` acts on: the echoed post for a plain echo (a reblog)."""
    return await store.echo_target(ctx, sid) or sid


@router.post("/api/v1/statuses/{status_id}/favourite")
async def favourite(status_id: str, request: Request, grant: WriteFavourites) -> JSON:
    ctx = get_ctx(request)
    sid = await _target(ctx, an_id(status_id))
    await posts.upvote(ctx, me(grant), sid)
    return JSON(await render_status(ctx, request, me(grant), sid))


@router.post("/api/v1/statuses/{status_id}/unfavourite")
async def unfavourite(status_id: str, request: Request, grant: WriteFavourites) -> JSON:
    ctx = get_ctx(request)
    sid = await _target(ctx, an_id(status_id))
    await posts.remove_upvote(ctx, me(grant), sid)
    return JSON(await render_status(ctx, request, me(grant), sid))


@router.post("/api/v1/statuses/{status_id}/reblog")
async def reblog(status_id: str, request: Request, grant: WriteStatuses) -> JSON:
    ctx = get_ctx(request)
    sid = await _target(ctx, an_id(status_id))
    try:
        doc = await posts.create_post(ctx, me(grant), "", echo_of=sid)
        echo_id = int(doc["id"])
    except Conflict:  # reblogged already: the same answer again
        echo_id = await store.plain_echo(ctx, me(grant), sid) or 0
    return JSON(await render_status(ctx, request, me(grant), echo_id))


@router.post("/api/v1/statuses/{status_id}/unreblog")
async def unreblog(status_id: str, request: Request, grant: WriteStatuses) -> JSON:
    ctx = get_ctx(request)
    sid = await _target(ctx, an_id(status_id))
    echo_id = await store.plain_echo(ctx, me(grant), sid)
    if echo_id is not None:
        await posts.delete_post(ctx, me(grant), echo_id)
    return JSON(await render_status(ctx, request, me(grant), sid))


@router.get("/api/v1/statuses/{status_id}/favourited_by")
async def favourited_by(status_id: str, request: Request, p: P, grant: ReadAccounts) -> JSON:
    ctx = get_ctx(request)
    sid = await _target(ctx, an_id(status_id))
    await render_status(ctx, request, me(grant), sid)
    pg = page(p, 40, 80)
    ids = await store.favourited_by(ctx, sid, pg)
    return paged(request, await render_accounts(ctx, request, ids), ids, pg.limit)


@router.get("/api/v1/statuses/{status_id}/reblogged_by")
async def reblogged_by(status_id: str, request: Request, p: P, grant: ReadAccounts) -> JSON:
    ctx = get_ctx(request)
    sid = await _target(ctx, an_id(status_id))
    await render_status(ctx, request, me(grant), sid)
    pg = page(p, 40, 80)
    ids = await store.reblogged_by(ctx, sid, pg)
    return paged(request, await render_accounts(ctx, request, ids), ids, pg.limit)


async def _upload(request: Request, p: Params, grant: Grant) -> JSON:
    ctx = get_ctx(request)
    f = file(p)
    data = await f.read(ctx.settings.media_max_bytes + 1)
    doc = await posts.upload_media(ctx, me(grant), data)
    row = await store.describe_media(ctx, me(grant), int(doc["id"]), text(p, "description"))
    return JSON(entities.media_row(base(request), row))


@router.post("/api/v2/media")
async def upload_v2(request: Request, p: P, grant: WriteMedia) -> JSON:
    return await _upload(request, p, grant)


@router.post("/api/v1/media")
async def upload_v1(request: Request, p: P, grant: WriteMedia) -> JSON:
    return await _upload(request, p, grant)


@router.get("/api/v1/media/{media_id}")
async def get_media(media_id: str, request: Request, grant: WriteMedia) -> JSON:
    row = await store.media(get_ctx(request), me(grant), an_id(media_id))
    return JSON(entities.media_row(base(request), row))


@router.put("/api/v1/media/{media_id}")
async def update_media(media_id: str, request: Request, p: P, grant: WriteMedia) -> JSON:
    row = await store.describe_media(get_ctx(request), me(grant), an_id(media_id),
                                     text(p, "description"))
    return JSON(entities.media_row(base(request), row))


@router.post("/api/v1/reports")
async def report(request: Request, p: P, grant: WriteReports) -> JSON:
    """A Mastodon report becomes Freehold reports: one per status named (else one of the
    account), each joining its target's case in the jury queue."""
    ctx = get_ctx(request)
    target = an_id(p.get("account_id"))
    target_row = await store.account(ctx, target)
    category = text(p, "category") or ("other" if not p.get("rule_ids") else "violation")
    if category not in CATEGORIES:
        raise Invalid("category: spam, legal, violation or other", field="category")
    comment = (text(p, "comment") or "")[:1000]
    status_ids = [an_id(s) for s in strings(p, "status_ids")[:20]]
    case_id: str | None = None
    for sid in status_ids or [None]:
        try:
            case: dict[str, Any] = await moderation.report(
                ctx, me(grant), CATEGORIES[category], post_id=sid,
                account_id=None if sid else target, note=comment)
            case_id = case_id or case["id"]
        except Conflict:
            continue  # reported already by this account: the case has it
    return JSON({"id": case_id or str(target), "action_taken": False, "action_taken_at": None,
                 "category": category, "comment": comment, "forwarded": False,
                 "created_at": entities.when(datetime.now(UTC)),
                 "status_ids": [str(s) for s in status_ids] or None, "rule_ids": None,
                 "target_account": entities.account(base(request), target_row)})
