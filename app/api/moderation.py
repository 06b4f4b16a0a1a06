"""/api/v1: reports, the jury queue and votes, appeals, admin tools and audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.api.deps import JSON, Viewer, Writer, get_ctx, path_id
from app.api.models import AppealDecisionIn, AppealIn, FlagIn, ReportIn, VoteIn
from app.services import accounts, audit, moderation
from app.services.accounts import account_json

router = APIRouter(tags=["moderation"])


@router.post("/reports", status_code=201, summary="Report a post or an account")
async def report(body: ReportIn, request: Request, me: Writer) -> JSON:
    doc = await moderation.report(
        get_ctx(request), me, body.reason,
        post_id=path_id(body.post_id, "post") if body.post_id else None,
        account_id=path_id(body.account_id, "account") if body.account_id else None,
        note=body.note)
    return JSON(doc, status_code=201)


@router.get("/moderation/queue", summary="Jury queue: violence first, then oldest (jurors)")
async def queue(request: Request, me: Viewer,
                limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JSON:
    return JSON({"items": await moderation.queue(get_ctx(request), me, limit)})


@router.post("/moderation/cases/{case_id}/votes", summary="A juror's vote: remove or keep")
async def vote(case_id: str, body: VoteIn, request: Request, me: Writer) -> JSON:
    return JSON(await moderation.vote(get_ctx(request), me, path_id(case_id, "case"),
                                      body.decision))


@router.get("/moderation/mine", summary="Decided cases against my account")
async def mine(request: Request, me: Viewer) -> JSON:
    return JSON({"items": await moderation.my_cases(get_ctx(request), me)})


@router.post("/moderation/cases/{case_id}/appeal", status_code=201, summary="Appeal a removal")
async def appeal(case_id: str, body: AppealIn, request: Request, me: Writer) -> JSON:
    doc = await moderation.appeal(get_ctx(request), me, path_id(case_id, "case"), body.body)
    return JSON(doc, status_code=201)


@router.get("/admin/moderation", summary="Admin: queue size, oldest item age, appeals")
async def admin_stats(request: Request, me: Viewer) -> JSON:
    return JSON(await moderation.stats(get_ctx(request), me))


@router.get("/admin/appeals", summary="Admin: appeals")
async def admin_appeals(request: Request, me: Viewer,
                        status: Literal["open", "granted", "denied"] = "open") -> JSON:
    return JSON({"items": await moderation.appeals(get_ctx(request), me, status)})


@router.post("/admin/appeals/{appeal_id}", summary="Admin: grant or deny an appeal")
async def decide(appeal_id: str, body: AppealDecisionIn, request: Request, me: Writer) -> JSON:
    return JSON(await moderation.decide_appeal(get_ctx(request), me,
                                               path_id(appeal_id, "appeal"), body.grant))


@router.put("/admin/accounts/{account_id}/{flag}",
            summary="Admin: set verified badge, juror or admin role")
async def set_flag(account_id: str, flag: Literal["verified", "juror", "admin"], body: FlagIn,
                   request: Request, me: Writer) -> JSON:
    ctx = get_ctx(request)
    row = await accounts.set_flag(ctx, me, path_id(account_id, "account"), flag, body.value)
    return JSON(account_json(ctx, row))


@router.get("/admin/audit", summary="Admin: audit log, newest first")
async def audit_log(request: Request, me: Viewer,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    before: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None
                    ) -> JSON:
    ctx = get_ctx(request)
    await accounts.require_admin(ctx, me)
    return JSON({"items": await audit.entries(ctx.db, limit,
                                              path_id(before) if before else None)})
