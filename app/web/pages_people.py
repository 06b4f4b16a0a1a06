"""Web pages: profiles, follow / unfollow, block, mute, followers and following, reports."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from freehold.app.api.deps import get_ctx, path_id
from freehold.app.services import accounts, feed, moderation, posts, social
from freehold.app.services.errors import Forbidden, Invalid, ServiceError
from freehold.app.web.render import render
from freehold.app.web.session import checked_form, require_viewer, safe_next, text_field

router = APIRouter(include_in_schema=False)

ACTIONS = {"follow", "unfollow", "block", "unblock", "mute", "unmute"}
REASON_LABELS = {"incitement": "Incitement to violence", "threat": "Threat",
                 "harassment": "Harassment", "spam": "Spam", "illegal": "Illegal content",
                 "other": "Other"}


@router.get("/u/{username}")
async def profile(username: str, request: Request, cursor: str | None = None) -> Response:
    me = await require_viewer(request)
    ctx = get_ctx(request)
    account = accounts.account_json(ctx, await accounts.get_by_username(ctx, username))
    aid = int(account["id"])
    rel = await social.relationship(ctx, me.id, aid)
    items: list[dict[str, object]] = []
    nxt = None
    hidden_reason = None
    try:
        items, nxt = await feed.account_posts(ctx, me.id, aid, limit=30, cursor=cursor or None)
    except Forbidden as exc:
        hidden_reason = exc.message
    return await render(request, "profile.html", account=account, rel=rel, posts=items,
                        next_cursor=nxt, hidden_reason=hidden_reason,
                        own=aid == me.id)


@router.post("/u/{username}/{action}")
async def relation(username: str, action: str, request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    if action not in ACTIONS:
        raise Invalid(f"unknown action {action!r}", field="action")
    ctx = get_ctx(request)
    target = int((await accounts.get_by_username(ctx, username))["id"])
    if action == "follow":
        await social.follow(ctx, me.id, target)
    elif action == "unfollow":
        await social.unfollow(ctx, me.id, target)
    elif action == "block":
        await social.block(ctx, me.id, target)
    elif action == "unblock":
        await social.unblock(ctx, me.id, target)
    elif action == "mute":
        await social.mute(ctx, me.id, target)
    else:
        await social.unmute(ctx, me.id, target)
    return RedirectResponse(safe_next(text_field(form, "next"), f"/u/{username.lower()}"),
                            status_code=303)


async def _people(request: Request, username: str, which: str, cursor: str | None
                  ) -> Response:
    me = await require_viewer(request)
    ctx = get_ctx(request)
    account = accounts.account_json(ctx, await accounts.get_by_username(ctx, username))
    before = path_id(cursor, "page") if cursor else None
    items, nxt = await social.list_follows(ctx, me.id, int(account["id"]), which, limit=40,
                                           before=before)
    return await render(request, "people.html", account=account, which=which, people=items,
                        next_cursor=nxt)


@router.get("/u/{username}/followers")
async def followers(username: str, request: Request, cursor: str | None = None) -> Response:
    return await _people(request, username, "followers", cursor)


@router.get("/u/{username}/following")
async def following(username: str, request: Request, cursor: str | None = None) -> Response:
    return await _people(request, username, "following", cursor)


async def _report_target(request: Request, post: str | None, account: str | None
                         ) -> tuple[dict[str, object] | None, dict[str, object] | None]:
    me = await require_viewer(request)
    ctx = get_ctx(request)
    if post:
        return await posts.get_post(ctx, me.id, path_id(post, "post")), None
    if account:
        return None, accounts.account_json(ctx, await accounts.get_by_username(ctx, account))
    raise Invalid("report either a post or an account", field="post")


@router.get("/report")
async def report_page(request: Request, post: str | None = None,
                      account: str | None = None) -> Response:
    p, a = await _report_target(request, post, account)
    return await render(request, "report.html", post=p, account=a, reasons=REASON_LABELS,
                        reason="", note="")


@router.post("/report")
async def report(request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    ctx = get_ctx(request)
    post_ref = text_field(form, "post") or None
    account_ref = text_field(form, "account") or None
    p, a = await _report_target(request, post_ref, account_ref)
    reason, note = text_field(form, "reason"), text_field(form, "note")
    try:
        await moderation.report(
            ctx, me.id, reason, post_id=int(p["id"]) if p else None,  # type: ignore[call-overload]
            account_id=int(a["id"]) if a else None,  # type: ignore[call-overload]
            note=note)
    except ServiceError as exc:
        return await render(request, "report.html", exc.status, post=p, account=a,
                            reasons=REASON_LABELS, reason=reason, note=note, error=exc)
    return await render(request, "reported.html", post=p, account=a,
                        reason=REASON_LABELS.get(reason, reason))
