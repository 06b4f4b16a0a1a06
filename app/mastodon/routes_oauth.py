"""POST /api/v1/apps, GET /api/v1/apps/verify_credentials, POST /oauth/token, POST
/oauth/revoke, GET /.well-known/oauth-authorization-server (the consent page, GET/POST
/oauth/authorize, is a web page: app.mastodon.authorize)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from freehold.app.api.deps import JSON, get_ctx
from freehold.app.mastodon.deps import Params, base, params, scope
from freehold.app.services import oauth
from freehold.app.services.oauth import Grant, OAuthError

router = APIRouter()
P = Annotated[Params, Depends(params)]


@router.post("/api/v1/apps")
async def create_app(request: Request, p: P) -> JSON:
    ctx = get_ctx(request)
    uris = p.get("redirect_uris", p.get("redirect_uri"))
    return JSON(await oauth.register_app(ctx, p.get("client_name"), uris, p.get("scopes"),
                                         p.get("website") or None))


@router.get("/api/v1/apps/verify_credentials")
async def verify_app(request: Request,
                     grant: Annotated[Grant, Depends(scope("read", user=False))]) -> JSON:
    return JSON(await oauth.app_of(get_ctx(request), grant.app_id))


def _client_auth(request: Request, p: Params) -> tuple[object, object]:
    """client_id and client_secret from the form (client_secret_post) or HTTP Basic."""
    cid, secret = p.get("client_id"), p.get("client_secret")
    scheme, _, cred = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and cred:
        try:
            cid, _, secret = base64.b64decode(cred).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Basic credentials are not valid base64",
                             401) from None
    return cid, secret


@router.post("/oauth/token")
async def token(request: Request, p: P) -> JSON:
    ctx = get_ctx(request)
    grant_type = p.get("grant_type")
    cid, secret = _client_auth(request, p)
    if grant_type not in ("authorization_code", "client_credentials", "refresh_token"):
        raise OAuthError("unsupported_grant_type", "grant_type: authorization_code, "
                         "client_credentials or refresh_token")
    app = await oauth.client(ctx, cid, secret)
    if grant_type == "authorization_code":
        doc = await oauth.exchange_code(ctx, app, p.get("code"), p.get("redirect_uri"),
                                        p.get("code_verifier"))
    elif grant_type == "client_credentials":
        doc = await oauth.client_credentials(ctx, app, p.get("scope") or p.get("scopes"))
    else:
        doc = await oauth.refresh(ctx, app, p.get("refresh_token"), p.get("scope"))
    return JSON(doc, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.post("/oauth/revoke")
async def revoke(request: Request, p: P) -> JSON:
    ctx = get_ctx(request)
    cid, secret = _client_auth(request, p)
    app = await oauth.client(ctx, cid, secret)
    await oauth.revoke(ctx, app, p.get("token"))
    return JSON({})


@router.get("/.well-known/oauth-authorization-server")
async def metadata(request: Request) -> JSON:
    b = base(request).base
    return JSON({
        "issuer": f"{b}/",
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": f"{b}/oauth/authorize",
        "token_endpoint": f"{b}/oauth/token",
        "app_registration_endpoint": f"{b}/api/v1/apps",
        "revocation_endpoint": f"{b}/oauth/revoke",
        "scopes_supported": list(oauth.ALL_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "client_credentials",
                                  "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                  "client_secret_post"],
    })
