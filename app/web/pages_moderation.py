"""Web pages: the jury queue (jurors vote), my decided cases and appeals, the admin page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from freehold.app.api.deps import get_ctx, path_id
from freehold.app.services import accounts, audit, moderation
from freehold.app.services.errors import Invalid, ServiceError
from freehold.app.web.pages_people import REASON_LABELS
from freehold.app.web.render import render
from freehold.app.web.session import checked_form, require_viewer, text_field

router = APIRouter(include_in_schema=False)
FLAGS = ("juror", "verified", "admin")
AUDIT_PAGE = 50


@router.get("/jury")
async def jury(request: Request) -> Response:
    me = await require_viewer(request)
    cases = await moderation.queue(get_ctx(request), me.id, 50)
    return await render(request, "jury.html", cases=cases, reasons=REASON_LABELS,
                        voted=request.query_params.get("voted"))


@router.post("/jury/{case_id}/vote")
async def vote(case_id: str, request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    doc = await moderation.vote(get_ctx(request), me.id, path_id(case_id, "case"),
                                text_field(form, "decision"))
    return RedirectResponse(f"/jury?voted={doc['status']}", status_code=303)


@router.get("/cases")
async def my_cases(request: Request) -> Response:
    me = await require_viewer(request)
    cases = await moderation.my_cases(get_ctx(request), me.id)
    return await render(request, "cases.html", cases=cases, reasons=REASON_LABELS)


@router.post("/cases/{case_id}/appeal")
async def appeal(case_id: str, request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    await moderation.appeal(get_ctx(request), me.id, path_id(case_id, "case"),
                            text_field(form, "body"))
    return RedirectResponse("/cases", status_code=303)


async def _admin(request: Request, status: int = 200, **extra: object) -> Response:
    """The admin page: queue figures, roles form, appeals (`?appeals=open|granted|denied`) and
    the audit log, newest first, AUDIT_PAGE entries a page (`?before=<id>`: older ones)."""
    me = await require_viewer(request)
    ctx = get_ctx(request)
    stats = await moderation.stats(ctx, me.id)  # admins only: refuses everyone else
    appeal_status = request.query_params.get("appeals") or "open"
    appeals = await moderation.appeals(ctx, me.id, appeal_status)
    raw = request.query_params.get("before")
    before = path_id(raw, "page") if raw else None
    entries = await audit.entries(ctx.db, AUDIT_PAGE + 1, before)
    older = entries[AUDIT_PAGE - 1]["id"] if len(entries) > AUDIT_PAGE else None
    log = await audit.described(ctx.db, entries[:AUDIT_PAGE])
    return await render(request, "admin.html", status, stats=stats, appeals=appeals,
                        appeal_status=appeal_status, appeal_statuses=moderation.APPEAL_STATUSES,
                        audit=log, audit_older=older, audit_paged=before is not None,
                        reasons=REASON_LABELS, **extra)


@router.get("/admin")
async def admin(request: Request) -> Response:
    return await _admin(request, done=request.query_params.get("done"))


@router.post("/admin/flag")
async def set_flag(request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    ctx = get_ctx(request)
    flag = text_field(form, "flag")
    value = text_field(form, "value") != "off"
    username = text_field(form, "username").strip().lstrip("@")
    try:
        if flag not in FLAGS:
            raise Invalid(f"flag: one of {', '.join(FLAGS)}", field="flag")
        await accounts.require_admin(ctx, me.id)
        target = await accounts.get_by_username(ctx, username)
        await accounts.set_flag(ctx, me.id, int(target["id"]), flag, value)
    except ServiceError as exc:
        if exc.status == 403:
            raise
        return await _admin(request, exc.status, error=exc, username=username)
    done = f"{flag} {'granted to' if value else 'removed from'} @{username.lower()}"
    return RedirectResponse(f"/admin?done={done}", status_code=303)


@router.post("/admin/appeals/{appeal_id}")
async def decide_appeal(appeal_id: str, request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    grant = text_field(form, "grant") == "yes"
    await moderation.decide_appeal(get_ctx(request), me.id, path_id(appeal_id, "appeal"), grant)
    return RedirectResponse(f"/admin?done=appeal {'granted' if grant else 'denied'}",
                            status_code=303)
