"""/api/v1: reports, the jury queue and votes, appeals, admin tools and audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from freehold.app.api.deps import JSON, Viewer, Writer, get_ctx, path_id
from freehold.app.api.models import AppealDecisionIn, AppealIn, FlagIn, ReportIn, VoteIn
from freehold.app.api.schemas import (
    Account,
    AppealDecision,
    AppealList,
    AppealMade,
    AuditLog,
    Case,
    CaseList,
    DocJSON,
    ModerationStats,
    Queue,
    errors,
)
from freehold.app.services import accounts, audit, moderation
from freehold.app.services.accounts import account_json

router = APIRouter(tags=["moderation"], default_response_class=DocJSON)


@router.post("/reports", status_code=201, summary="Report a post or an account",
             response_model=Case, responses=errors(400, 401, 404, 409, 422, 429))
async def report(body: ReportIn, request: Request, me: Writer) -> JSON:
    doc = await moderation.report(
        get_ctx(request), me, body.reason,
        post_id=path_id(body.post_id, "post") if body.post_id else None,
        account_id=path_id(body.account_id, "account") if body.account_id else None,
        note=body.note)
    return JSON(doc, status_code=201)


@router.get("/moderation/queue", summary="Jury queue: violence first, then oldest (jurors)",
            response_model=Queue, responses=errors(401, 403, 422))
async def queue(request: Request, me: Viewer,
                limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JSON:
    return JSON({"items": await moderation.queue(get_ctx(request), me, limit)})


@router.post("/moderation/cases/{case_id}/votes", summary="A juror's vote: remove or keep",
             response_model=Case, responses=errors(400, 401, 403, 404, 409, 422, 429))
async def vote(case_id: str, body: VoteIn, request: Request, me: Writer) -> JSON:
    return JSON(await moderation.vote(get_ctx(request), me, path_id(case_id, "case"),
                                      body.decision))


@router.get("/moderation/mine", summary="Decided cases against my account",
            response_model=CaseList, responses=errors(401))
async def mine(request: Request, me: Viewer) -> JSON:
    return JSON({"items": await moderation.my_cases(get_ctx(request), me)})


@router.post("/moderation/cases/{case_id}/appeal", status_code=201, summary="Appeal a removal",
             response_model=AppealMade, responses=errors(400, 401, 404, 409, 422, 429))
async def appeal(case_id: str, body: AppealIn, request: Request, me: Writer) -> JSON:
    doc = await moderation.appeal(get_ctx(request), me, path_id(case_id, "case"), body.body)
    return JSON(doc, status_code=201)


@router.get("/admin/moderation", summary="Admin: queue size, oldest item age, appeals",
            response_model=ModerationStats, responses=errors(401, 403))
async def admin_stats(request: Request, me: Viewer) -> JSON:
    return JSON(await moderation.stats(get_ctx(request), me))


@router.get("/admin/appeals", summary="Admin: appeals", response_model=AppealList,
            responses=errors(401, 403, 422))
async def admin_appeals(request: Request, me: Viewer,
                        status: Literal["open", "granted", "denied"] = "open") -> JSON:
    return JSON({"items": await moderation.appeals(get_ctx(request), me, status)})


@router.post("/admin/appeals/{appeal_id}", summary="Admin: grant or deny an appeal",
             response_model=AppealDecision, responses=errors(400, 401, 403, 404, 409, 422, 429))
async def decide(appeal_id: str, body: AppealDecisionIn, request: Request, me: Writer) -> JSON:
    return JSON(await moderation.decide_appeal(get_ctx(request), me,
                                               path_id(appeal_id, "appeal"), body.grant))


@router.put("/admin/accounts/{account_id}/{flag}",
            summary="Admin: set verified badge, juror or admin role",
            response_model=Account, responses=errors(400, 401, 403, 404, 422, 429))
async def set_flag(account_id: str, flag: Literal["verified", "juror", "admin"], body: FlagIn,
                   request: Request, me: Writer) -> JSON:
    ctx = get_ctx(request)
    row = await accounts.set_flag(ctx, me, path_id(account_id, "account"), flag, body.value)
    return JSON(account_json(ctx, row))


@router.get("/admin/audit", summary="Admin: audit log, newest first", response_model=AuditLog,
            responses=errors(401, 403, 404, 422))
async def audit_log(request: Request, me: Viewer,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    before: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None
                    ) -> JSON:
    ctx = get_ctx(request)
    await accounts.require_admin(ctx, me)
    return JSON({"items": await audit.entries(ctx.db, limit,
                                              path_id(before) if before else None)})
