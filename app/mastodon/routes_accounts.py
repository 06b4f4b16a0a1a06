"""Accounts: verify/update credentials, profiles, their statuses, followers and following,
follow/unfollow, block/unblock, mute/unmute, relationships, lookup, search; blocks, mutes and
favourites lists."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from freehold.app.api.deps import JSON, get_ctx
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
from freehold.app.services import accounts, search, social
from freehold.app.services import mastodon as store
from freehold.app.services.errors import NotFound, ServiceError
from freehold.app.services.oauth import Grant

router = APIRouter()
P = Annotated[Params, Depends(params)]


ReadAccounts = Annotated[Grant, Depends(scope("read:accounts"))]
WriteAccounts = Annotated[Grant, Depends(scope("write:accounts", write=True))]
ReadFollows = Annotated[Grant, Depends(scope("read:follows"))]
ReadStatuses = Annotated[Grant, Depends(scope("read:statuses"))]
WriteFollows = Annotated[Grant, Depends(scope("write:follows", write=True))]
WriteBlocks = Annotated[Grant, Depends(scope("write:blocks", write=True))]
WriteMutes = Annotated[Grant, Depends(scope("write:mutes", write=True))]
ReadBlocks = Annotated[Grant, Depends(scope("read:blocks"))]
ReadMutes = Annotated[Grant, Depends(scope("read:mutes"))]
ReadFavourites = Annotated[Grant, Depends(scope("read:favourites"))]


async def _credential(request: Request, account_id: int) -> JSON:
    ctx = get_ctx(request)
    row = await store.account(ctx, account_id, ctx.db)
    return JSON(entities.account(base(request), row, source=True))


@router.get("/api/v1/accounts/verify_credentials")
async def verify_credentials(request: Request, grant: ReadAccounts) -> JSON:
    return await _credential(request, me(grant))


@router.patch("/api/v1/accounts/update_credentials")
async def update_credentials(request: Request, p: P,
                             grant: WriteAccounts) -> JSON:
    ctx = get_ctx(request)
    note = text(p, "note")
    if note is None and isinstance(p.get("source"), dict):
        note = p["source"].get("note")
    await accounts.update_profile(ctx, me(grant), display_name=text(p, "display_name"),
                                  bio=note)
    avatar = p.get("avatar")
    if avatar is not None and hasattr(avatar, "read"):
        data = await avatar.read(ctx.settings.media_max_bytes + 1)
        await accounts.set_avatar(ctx, me(grant), data)
    return await _credential(request, me(grant))


@router.get("/api/v1/accounts/relationships")
async def relationships(request: Request, p: P,
                        grant: ReadFollows) -> JSON:
    ids = []
    for raw in strings(p, "id")[:100]:
        try:
            ids.append(an_id(raw))
        except ServiceError:
            continue
    rows = await store.relationships(get_ctx(request), me(grant), ids)
    return JSON([entities.relationship(r) for r in rows])


@router.get("/api/v1/accounts/lookup")
async def lookup(request: Request, p: P, grant: ReadAccounts) -> JSON:
    acct = (text(p, "acct") or "").lstrip("@")
    name, _, domain = acct.partition("@")
    if domain and domain.lower() != request.url.hostname:
        raise NotFound("Record not found")
    row = await accounts.get_by_username(get_ctx(request), name)
    return JSON(entities.account(base(request), await store.account(get_ctx(request),
                                                                    row["id"])))


@router.get("/api/v1/accounts/search")
async def account_search(request: Request, p: P, grant: ReadAccounts) -> JSON:
    q = text(p, "q") or ""
    found = await search.accounts(get_ctx(request), me(grant), q.split("@")[0] or q,
                                  page(p, 40, 80).limit)
    return JSON(await render_accounts(get_ctx(request), request,
                                      [int(a["id"]) for a in found]))


@router.get("/api/v1/accounts/{account_id}")
async def get_account(account_id: str, request: Request, grant: ReadAccounts) -> JSON:
    row = await store.account(get_ctx(request), an_id(account_id))
    return JSON(entities.account(base(request), row))


@router.get("/api/v1/accounts/{account_id}/statuses")
async def account_statuses(account_id: str, request: Request, p: P,
                           grant: ReadStatuses) -> JSON:
    ctx = get_ctx(request)
    aid = an_id(account_id)
    await store.account(ctx, aid)  # 404 for no such account
    pg = page(p)
    if flag(p, "pinned"):
        return paged(request, [], [], pg.limit)  # no pinned posts in Freehold
    ids = await store.account_status_ids(
        ctx, aid, pg, exclude_replies=flag(p, "exclude_replies"),
        exclude_reblogs=flag(p, "exclude_reblogs"), only_media=flag(p, "only_media"))
    return paged(request, await render_statuses(ctx, request, me(grant), ids), ids, pg.limit)


async def _follows(request: Request, p: Params, account_id: str, which: str) -> JSON:
    ctx = get_ctx(request)
    aid = an_id(account_id)
    await store.account(ctx, aid)
    pg = page(p, 40, 80)
    ids = await store.follow_ids(ctx, aid, which, pg)
    return paged(request, await render_accounts(ctx, request, ids), ids, pg.limit)


@router.get("/api/v1/accounts/{account_id}/followers")
async def followers(account_id: str, request: Request, p: P, grant: ReadAccounts) -> JSON:
    return await _follows(request, p, account_id, "followers")


@router.get("/api/v1/accounts/{account_id}/following")
async def following(account_id: str, request: Request, p: P, grant: ReadAccounts) -> JSON:
    return await _follows(request, p, account_id, "following")


@router.get("/api/v1/accounts/{account_id}/featured_tags")
@router.get("/api/v1/accounts/{account_id}/lists")
@router.get("/api/v1/accounts/{account_id}/identity_proofs")
async def account_empty(account_id: str, grant: ReadAccounts) -> JSON:
    return JSON([])


async def _relationship(request: Request, viewer: int, other: int) -> JSON:
    rows = await store.relationships(get_ctx(request), viewer, [other])
    return JSON(entities.relationship(rows[0]))


@router.post("/api/v1/accounts/{account_id}/follow")
async def follow(account_id: str, request: Request,
                 grant: WriteFollows) -> JSON:
    aid = an_id(account_id)
    await social.follow(get_ctx(request), me(grant), aid)
    return await _relationship(request, me(grant), aid)


@router.post("/api/v1/accounts/{account_id}/unfollow")
async def unfollow(account_id: str, request: Request,
                   grant: WriteFollows) -> JSON:
    aid = an_id(account_id)
    await store.account(get_ctx(request), aid)
    await social.unfollow(get_ctx(request), me(grant), aid)
    return await _relationship(request, me(grant), aid)


@router.post("/api/v1/accounts/{account_id}/block")
async def block(account_id: str, request: Request,
                grant: WriteBlocks) -> JSON:
    aid = an_id(account_id)
    await social.block(get_ctx(request), me(grant), aid)
    return await _relationship(request, me(grant), aid)


@router.post("/api/v1/accounts/{account_id}/unblock")
async def unblock(account_id: str, request: Request,
                  grant: WriteBlocks) -> JSON:
    aid = an_id(account_id)
    await store.account(get_ctx(request), aid)
    await social.unblock(get_ctx(request), me(grant), aid)
    return await _relationship(request, me(grant), aid)


@router.post("/api/v1/accounts/{account_id}/mute")
async def mute(account_id: str, request: Request,
               grant: WriteMutes) -> JSON:
    aid = an_id(account_id)
    await social.mute(get_ctx(request), me(grant), aid)
    return await _relationship(request, me(grant), aid)


@router.post("/api/v1/accounts/{account_id}/unmute")
async def unmute(account_id: str, request: Request,
                 grant: WriteMutes) -> JSON:
    aid = an_id(account_id)
    await store.account(get_ctx(request), aid)
    await social.unmute(get_ctx(request), me(grant), aid)
    return await _relationship(request, me(grant), aid)


@router.get("/api/v1/blocks")
async def blocks(request: Request, p: P,
                 grant: ReadBlocks) -> JSON:
    pg = page(p, 40, 80)
    ids = await store.blocked_ids(get_ctx(request), me(grant), "blocks", pg)
    return paged(request, await render_accounts(get_ctx(request), request, ids), ids, pg.limit)


@router.get("/api/v1/mutes")
async def mutes(request: Request, p: P,
                grant: ReadMutes) -> JSON:
    pg = page(p, 40, 80)
    ids = await store.blocked_ids(get_ctx(request), me(grant), "mutes", pg)
    return paged(request, await render_accounts(get_ctx(request), request, ids), ids, pg.limit)


@router.get("/api/v1/favourites")
async def favourites(request: Request, p: P,
                     grant: ReadFavourites) -> JSON:
    pg = page(p)
    ids = await store.favourite_ids(get_ctx(request), me(grant), pg)
    items = await render_statuses(get_ctx(request), request, me(grant), ids, pool=get_ctx(
        request).db)
    return paged(request, items, ids, pg.limit)
