"""Request plumbing shared by the API routers: the Ctx, the viewer, client address, JSON."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from freehold.app import readwrite
from freehold.app.context import Ctx
from freehold.app.ids import parse_id
from freehold.app.services import auth, ratelimit
from freehold.app.services.errors import NotFound

SESSION_COOKIE = "fh_session"  # the web UI's session cookie (same tokens as the API)
bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/login")


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class JSONBytes(Response):
    """A body already rendered as JSON (app.services.postjson)."""

    media_type = "application/json"


def no_content() -> Response:
    """A 204 answer: no body at all (a JSON `null` body makes the response invalid HTTP)."""
    return Response(status_code=204)


def get_ctx(request: Request) -> Ctx:
    return request.app.state.ctx  # type: ignore[no-any-return]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def viewer(request: Request,
                 cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> int:
    """The logged-in account id (bearer token); 401 otherwise."""
    token = cred.credentials if cred else None
    ctx = get_ctx(request)
    me = await auth.require(ctx, token)
    await readwrite.reading(ctx, me)
    return me


async def writer(request: Request,
                 cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> int:
    """The logged-in account id of a write, counted against the write rate limits (per account
    and per client address; 429 past them). Every authenticated POST/PUT/PATCH/DELETE takes it
    (tests/integration/app/test_rate_limits.py checks that none is left out)."""
    ctx = get_ctx(request)
    me = await auth.require(ctx, cred.credentials if cred else None)
    await ratelimit.write(ctx, me, client_ip(request))
    await readwrite.wrote(ctx, me)
    return me


Viewer = Annotated[int, Depends(viewer)]
Writer = Annotated[int, Depends(writer)]
# a page's length; its maximum is the server's setting (feed_page_max), checked by the services
Limit = Annotated[int, Query(ge=1, description="a page's length: 1 to the server's "
                             "FREEHOLD_FEED_PAGE_MAX (100 unless its operator set it)")]
IdCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$",
                                       description="the next cursor of the previous page")]


def path_id(raw: str, what: str = "object") -> int:
    v = parse_id(raw)
    if v is None:
        raise NotFound(f"no such {what}")
    return v


def page(items: list[Any], next_cursor: str | None) -> JSON:
    return JSON({"items": items, "next_cursor": next_cursor})
