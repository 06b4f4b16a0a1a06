"""Web sessions and CSRF protection.

The session cookie holds the same opaque token as an API bearer token (app.services.auth), set
HttpOnly, SameSite=Lax and Secure when served over https (or FREEHOLD_COOKIE_SECURE). The JSON API
never reads the cookie, so only the web forms need CSRF protection.

CSRF: signed double-submit. A random `fh_csrf` cookie (HttpOnly) is set on the first page; every
form carries `csrf` = HMAC(secret_key, cookie). A POST whose field does not match its cookie's
HMAC is refused with 403 — a cross-site page can neither read the cookie nor compute the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from freehold.app import readwrite
from freehold.app.api.deps import SESSION_COOKIE, client_ip, get_ctx
from freehold.app.services import accounts, auth, notifications, ratelimit
from freehold.app.services.errors import Forbidden, ServiceError

CSRF_COOKIE = "fh_csrf"
CSRF_FIELD = "csrf"


class CsrfRefused(Forbidden):
    code = "csrf"


class LoginRequired(ServiceError):
    status = 401
    code = "login_required"


@dataclass
class Viewer:
    id: int
    username: str
    display_name: str
    avatar_url: str | None
    admin: bool
    juror: bool
    verified: bool
    suspended: bool
    unread: int


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


async def current_viewer(request: Request) -> Viewer | None:
    """The logged-in account of this request (cached on the request), or None."""
    if hasattr(request.state, "viewer"):
        return request.state.viewer  # type: ignore[no-any-return]
    ctx = get_ctx(request)
    viewer = None
    aid = await auth.resolve(ctx, session_token(request))
    if aid is not None:
        await readwrite.reading(ctx, aid)
        try:
            row = await accounts.get(ctx, aid, conn=ctx.db)
        except ServiceError:
            row = None
        if row is not None:
            doc = accounts.account_json(ctx, row)
            viewer = Viewer(id=aid, username=doc["username"], display_name=doc["display_name"],
                            avatar_url=doc["avatar_url"], admin=doc["admin"], juror=doc["juror"],
                            verified=doc["verified"], suspended=doc["suspended"],
                            unread=await notifications.unread_count(ctx, aid))
    request.state.viewer = viewer
    return viewer


async def require_viewer(request: Request) -> Viewer:
    viewer = await current_viewer(request)
    if viewer is None:
        raise LoginRequired("log in first")
    return viewer


def is_secure(request: Request) -> bool:
    return bool(get_ctx(request).settings.cookie_secure) or request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    days = get_ctx(request).settings.session_days
    response.set_cookie(SESSION_COOKIE, token, max_age=days * 86400, path="/", httponly=True,
                        samesite="lax", secure=is_secure(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=is_secure(request))


def _sign(request: Request, value: str) -> str:
    key = get_ctx(request).settings.secret_key.encode()
    return hmac.new(key, b"csrf:" + value.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The token for this request's forms; makes the cookie when the browser has none yet."""
    raw = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not raw or len(raw) > 100:
        raw = secrets.token_urlsafe(24)
        request.state.new_csrf = raw
    return _sign(request, raw)


def attach_csrf_cookie(request: Request, response: Response) -> None:
    raw = getattr(request.state, "new_csrf", None)
    if raw:
        response.set_cookie(CSRF_COOKIE, raw, path="/", httponly=True, samesite="lax",
                            secure=is_secure(request))


async def checked_form(request: Request, *, write: bool = True) -> FormData:
    """The POSTed form after the CSRF check; CsrfRefused (403) on a missing or wrong token.

    Every form of a logged-in account is a write and counts against the write rate limits (per
    account and per client address), as the API's writes do; sign-up, log-in and log-out pass
    write=False (they have limits of their own, or none)."""
    form = await request.form(max_files=10, max_fields=50)
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = form.get(CSRF_FIELD)
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(
            sent.encode(), _sign(request, cookie).encode()):
        raise CsrfRefused("this form expired or came from another site: reload the page and "
                          "try again")
    if write:
        viewer = await current_viewer(request)
        if viewer is not None:
            await ratelimit.write(get_ctx(request), viewer.id, client_ip(request))
            await readwrite.wrote(get_ctx(request), viewer.id)
    return form


def text_field(form: FormData, name: str, default: str = "") -> str:
    v: Any = form.get(name)
    return v if isinstance(v, str) else default


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to after a form (never another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(c in target for c in "\r\n") or len(target) > 500:
        return default
    return target
