"""The Mastodon client API beside the native one: existing Mastodon apps (and the Mastodon.py
and masto.js libraries) work against Freehold, on the same services.

It is an ASGI app of its own (`build`), called by the main app (app.api.fastpath.FeedApp)
for the requests `wants` picks, before the native routing:
- every request whose bearer token is an OAuth access token (oauth.TOKEN_PREFIX): a Mastodon
  client's, whatever its path (native and Mastodon paths overlap: /api/v1/timelines/home,
  /api/v1/accounts/:id, /api/v1/notifications...);
- paths only Mastodon has: /api/v2/*, /oauth/token, /oauth/revoke, the OAuth metadata, and
  /api/v1/ paths whose first segment the native API does not use (apps, instance, statuses…);
- CORS preflights (OPTIONS) under /api/ and /oauth/.
The consent page (/oauth/authorize) is a page of the web UI (app.mastodon.authorize).

Answers are Mastodon's: entities (app.mastodon.entities), errors as {"error": "…"} (OAuth
endpoints: {error, error_description}), pages with Link headers, X-RateLimit-* headers on
every answer, CORS open to any origin (Link and the rate-limit headers exposed), and no
redirects (no trailing-slash redirects either). Scopes are checked per route
(app.mastodon.deps.scope). Routes and fields left null on purpose: docs/mastodon-api.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from freehold.app import metrics, unavailable
from freehold.app.api.deps import JSON
from freehold.app.services.errors import RateLimited, ServiceError
from freehold.app.services.oauth import TOKEN_PREFIX, OAuthError

EXACT = frozenset({"/oauth/token", "/oauth/revoke", "/.well-known/oauth-authorization-server"})
# first segments under /api/v1/ that only the Mastodon API has
V1_ONLY = frozenset({
    "apps", "instance", "statuses", "custom_emojis", "preferences", "markers", "filters",
    "lists", "announcements", "trends", "streaming", "follow_requests", "bookmarks",
    "favourites", "blocks", "mutes", "conversations", "suggestions", "domain_blocks",
    "endorsements", "featured_tags", "followed_tags", "polls", "scheduled_statuses", "push",
    "directory"})
ACCOUNTS_ONLY = frozenset({"verify_credentials", "update_credentials", "relationships",
                           "lookup", "search", "familiar_followers"})
TIMELINES_ONLY = frozenset({"public", "tag", "list", "link"})
_BEARER = TOKEN_PREFIX.encode()


def wants(scope: dict[str, Any]) -> bool:
    """Whether a request is the Mastodon API's (see the module doc)."""
    path: str = scope["path"]
    if path in EXACT:
        return True
    if not path.startswith(("/api/", "/oauth/")):
        return False
    for name, value in scope["headers"]:
        if name == b"authorization":
            if value[7:7 + len(_BEARER)] == _BEARER and value[:7].lower() == b"bearer ":
                return True
            break
    if scope.get("method") == "OPTIONS":
        return True
    if path.startswith("/api/v2/"):
        return True
    if not path.startswith("/api/v1/"):
        return False
    first, _, rest = path[8:].partition("/")
    if first in V1_ONLY:
        return True
    second = rest.partition("/")[0]
    return (first == "accounts" and second in ACCOUNTS_ONLY) or \
        (first == "timelines" and second in TIMELINES_ONLY) or \
        (first == "media" and bool(second))


async def service_error(request: Request, exc: ServiceError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) or \
        hasattr(exc, "retry_after") else None
    if isinstance(exc, OAuthError):
        return JSON(exc.to_json(), status_code=exc.status, headers=headers)
    message = exc.message
    if exc.status == 404 and message.startswith("no such"):
        message = "Record not found"
    return JSON({"error": message}, status_code=exc.status, headers=headers)


async def http_error(request: Request, exc: HTTPException) -> Response:
    message = "Record not found" if exc.status_code == 404 else str(exc.detail)
    return JSON({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    first: Any = next(iter(exc.errors()), {})
    where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
    return JSON({"error": f"Validation failed: {where} {first.get('msg', '')}".strip()},
                status_code=422)


def build() -> FastAPI:
    """The Mastodon API's ASGI app; its `state.ctx` is set by the main app's lifespan."""
    from freehold.app.mastodon import (
        routes_accounts,
        routes_instance,
        routes_oauth,
        routes_statuses,
        routes_timelines,
    )
    from freehold.app.mastodon.middleware import MastodonMiddleware

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False,
                  default_response_class=JSON)
    app.router.redirect_slashes = False
    for r in (routes_oauth.router, routes_instance.router, routes_accounts.router,
              routes_statuses.router, routes_timelines.router):
        app.include_router(r)
    app.add_exception_handler(ServiceError, service_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    unavailable.install(app)
    app.add_middleware(MastodonMiddleware)
    app.add_middleware(metrics.MetricsMiddleware)
    return app
