"""GET/POST /oauth/authorize: the consent page of the OAuth code flow, a page of the web UI.

GET checks the request (client, redirect URI, scopes, PKCE challenge), sends a visitor who is
not logged in to the web UI's log-in page (back here afterwards), and shows the app's name and
the scopes it asks for with Authorize / Deny. The POST is a CSRF-checked form (app.web.session):
Authorize makes a code and redirects to the app (`?code=…&state=…`), or shows the code for
`urn:ietf:wg:oauth:2.0:oob`; Deny redirects with `error=access_denied`. A request with a bad
client or redirect URI is never redirected: an error page says what is wrong.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from freehold.app.api.deps import get_ctx
from freehold.app.services import oauth
from freehold.app.services.oauth import OOB, AuthRequest, OAuthError
from freehold.app.web.render import render
from freehold.app.web.session import checked_form, current_viewer, require_viewer

router = APIRouter(include_in_schema=False)
FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "scopes", "state",
          "code_challenge", "code_challenge_method")
SCOPE_TEXT = {"read": "read your posts, timelines, notifications and profile",
              "write": "post, reply, echo, upvote and change your profile for you",
              "follow": "follow, unfollow, block and mute accounts for you",
              "push": "receive push notifications",
              "profile": "read your profile"}


def describe(s: str) -> str:
    top, _, what = s.partition(":")
    if not what:
        return SCOPE_TEXT.get(s, s)
    return f"{'read' if top == 'read' else 'change'} your {what.replace('_', ' ')}"


def _redirect(uri: str, **args: str | None) -> str:
    q = urlencode({k: v for k, v in args.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{q}"


async def _error(request: Request, exc: OAuthError) -> Response:
    return await render(request, "error.html", 400, title="This app's request is not valid",
                        message=f"{exc.code}: {exc.message}", code=400)


def _allow_target(response: Response, uri: str) -> Response:
    """Let the form's redirect reach the app: CSP form-action covers redirects after a form."""
    parts = urlsplit(uri)
    target = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") \
        else f"{parts.scheme}:"
    csp = response.headers.get("Content-Security-Policy", "")
    response.headers["Content-Security-Policy"] = csp.replace(
        "form-action 'self'", f"form-action 'self' {target}")
    return response


@router.get("/oauth/authorize")
async def authorize_page(request: Request) -> Response:
    params: dict[str, Any] = {k: request.query_params.get(k) for k in FIELDS
                              if request.query_params.get(k) is not None}
    try:
        req = await oauth.check_authorize(get_ctx(request), params)
    except OAuthError as exc:
        return await _error(request, exc)
    if await current_viewer(request) is None:
        here = request.url.path + "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
    response = await render(request, "oauth_authorize.html", req=req, describe=describe)
    return _allow_target(response, req.redirect_uri)


@router.post("/oauth/authorize")
async def authorize(request: Request) -> Response:
    form = await checked_form(request, write=False)
    viewer = await require_viewer(request)
    params = {k: v for k in FIELDS if isinstance(v := form.get(k), str)}
    try:
        req: AuthRequest = await oauth.check_authorize(get_ctx(request), params)
    except OAuthError as exc:
        return await _error(request, exc)
    approved = form.get("decision") == "approve"
    code = await oauth.make_code(get_ctx(request), req, viewer.id) if approved else None
    if req.redirect_uri == OOB:
        return await render(request, "oauth_code.html", code=code, app_name=req.app_name)
    target = (_redirect(req.redirect_uri, code=code, state=req.state) if code else
              _redirect(req.redirect_uri, error="access_denied", state=req.state))
    return _allow_target(RedirectResponse(target, status_code=302), req.redirect_uri)
