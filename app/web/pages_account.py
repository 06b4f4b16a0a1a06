"""Web pages: sign up, log in, log out, settings (profile, avatar, delete account)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from freehold.app.api.deps import client_ip, get_ctx
from freehold.app.services import accounts, auth, signup_proof
from freehold.app.services.errors import Invalid, RateLimited, ServiceError
from freehold.app.web.render import render
from freehold.app.web.session import (
    checked_form,
    clear_session_cookie,
    current_viewer,
    require_viewer,
    safe_next,
    session_token,
    set_session_cookie,
    text_field,
)

router = APIRouter(include_in_schema=False)


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303)


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    if await current_viewer(request):
        return redirect("/")
    return await render(request, "signup.html", form={})


# what a browser that sent no proof is told (JavaScript off, or its script could not run)
NO_SCRIPT_PROOF = ("Many people are signing up from your network right now, so this form "
                   "asks your browser for a second or so of computation first. That needs "
                   "JavaScript: turn it on and send the form again, or try again later.")


@router.post("/signup")
async def signup(request: Request) -> Response:
    """The page's script solves the proof of work when one is required (static/app.js) and
    sends it as pow_challenge / pow_counter; without JavaScript the form works while no proof
    is required and says why otherwise."""
    form = await checked_form(request, write=False)
    ctx = get_ctx(request)
    values = {k: text_field(form, k) for k in ("username", "email", "display_name")}
    challenge = text_field(form, "pow_challenge")
    proof = (signup_proof.Proof(challenge, text_field(form, "pow_counter"))
             if challenge else None)
    try:
        row = await accounts.signup(ctx, values["username"], values["email"],
                                    text_field(form, "password"), ip=client_ip(request),
                                    display_name=values["display_name"], proof=proof)
    except RateLimited:
        raise
    except ServiceError as exc:
        if isinstance(exc, signup_proof.ProofRefused) and proof is None:
            exc = Invalid(NO_SCRIPT_PROOF, field="proof")
        return await render(request, "signup.html", exc.status, form=values, error=exc)
    token = await auth.create_session(ctx, row["id"])
    response = redirect("/")
    set_session_cookie(request, response, token)
    return response


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    if await current_viewer(request):
        return redirect(safe_next(next))
    return await render(request, "login.html", next=safe_next(next), login="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await checked_form(request, write=False)
    who = text_field(form, "login")
    nxt = safe_next(text_field(form, "next"))
    try:
        token, _ = await auth.login(get_ctx(request), who, text_field(form, "password"),
                                    ip=client_ip(request))
    except RateLimited:
        raise
    except ServiceError as exc:
        return await render(request, "login.html", exc.status, next=nxt, login=who, error=exc)
    response = redirect(nxt)
    set_session_cookie(request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request, write=False)
    token = session_token(request)
    if token:
        await auth.logout(get_ctx(request), token)
    response = redirect("/login")
    clear_session_cookie(request, response)
    return response


@router.get("/settings")
async def settings_page(request: Request) -> Response:
    me = await require_viewer(request)
    ctx = get_ctx(request)
    account = accounts.account_json(ctx, await accounts.get(ctx, me.id, conn=ctx.db))
    return await render(request, "settings.html", account=account,
                        saved=request.query_params.get("saved"))


async def _settings_error(request: Request, exc: ServiceError) -> Response:
    me = await require_viewer(request)
    ctx = get_ctx(request)
    account = accounts.account_json(ctx, await accounts.get(ctx, me.id, conn=ctx.db))
    return await render(request, "settings.html", exc.status, account=account, error=exc)


@router.post("/settings/profile")
async def save_profile(request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    try:
        await accounts.update_profile(get_ctx(request), me.id,
                                      display_name=text_field(form, "display_name"),
                                      bio=text_field(form, "bio"))
    except ServiceError as exc:
        return await _settings_error(request, exc)
    return redirect("/settings?saved=profile")


@router.post("/settings/avatar")
async def save_avatar(request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    ctx = get_ctx(request)
    f = form.get("avatar")
    try:
        if not isinstance(f, UploadFile) or not f.filename:
            raise Invalid("choose an image file first", field="avatar")
        data = await f.read(ctx.settings.media_max_bytes + 1)
        await accounts.set_avatar(ctx, me.id, data)
    except ServiceError as exc:
        return await _settings_error(request, exc)
    return redirect("/settings?saved=avatar")


@router.post("/settings/delete")
async def delete_account(request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    if text_field(form, "confirm") != me.username:
        return await _settings_error(
            request, Invalid("type your username to confirm the deletion", field="confirm"))
    try:
        await accounts.delete_account(get_ctx(request), me.id, text_field(form, "password"))
    except ServiceError as exc:
        return await _settings_error(request, exc)
    response = redirect("/signup")
    clear_session_cookie(request, response)
    return response
