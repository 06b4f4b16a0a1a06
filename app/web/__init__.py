"""The server-rendered web UI (Jinja2), mounted on the API's app by `mount(app)`.

Built on the same services as the JSON API (never HTTP to itself). Pages live in pages_*.py,
templates in templates/, CSS/JS/service worker in static/. Errors raised by the services are
answered as HTML pages here (the API keeps its JSON answers): 401 sends to the login page, 429
is a friendly page with Retry-After, a refused CSRF token is a 403 page, PostgreSQL or Redis
unavailable (app.unavailable) a 503 page with Retry-After.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from freehold.app.services.errors import RateLimited, ServiceError, Unavailable
from freehold.app.web import (
    pages_account,
    pages_discover,
    pages_moderation,
    pages_people,
    pages_posts,
    pwa,
)
from freehold.app.web.render import STATIC, render
from freehold.app.web.session import LoginRequired

NOT_WEB = ("/api/", "/media/", "/healthz", "/readyz", "/metrics")
TITLES = {400: "Bad request", 401: "Log in first", 403: "Not allowed", 404: "Not found",
          409: "Already done", 422: "Please check your input", 429: "Slow down",
          503: "Back in a moment"}


def is_web(request: Request) -> bool:
    return not request.url.path.startswith(NOT_WEB)


async def error_page(request: Request, status: int, message: str,
                     headers: dict[str, str] | None = None) -> Response:
    return await render(request, "error.html", status, headers=headers,
                        title=TITLES.get(status, "Something went wrong"), message=message,
                        code=status)


def mount(app: FastAPI) -> None:
    for module in (pwa, pages_account, pages_posts, pages_people, pages_discover,
                   pages_moderation):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="web-static")

    api_service_error = app.exception_handlers.get(ServiceError)
    api_http_error = app.exception_handlers.get(HTTPException)
    api_validation_error = app.exception_handlers.get(RequestValidationError)

    async def service_error(request: Request, exc: Exception) -> Any:
        if not is_web(request):
            assert api_service_error is not None
            return await api_service_error(request, exc)
        assert isinstance(exc, ServiceError)
        if isinstance(exc, LoginRequired) or exc.status == 401:
            nxt = request.url.path if request.method == "GET" else "/"
            return RedirectResponse(f"/login?next={nxt}", status_code=303)
        if isinstance(exc, RateLimited):
            return await render(request, "rate_limited.html", 429,
                                headers={"Retry-After": str(exc.retry_after)},
                                retry_after=exc.retry_after, message=exc.message)
        if isinstance(exc, Unavailable):
            if not hasattr(request.state, "viewer"):
                request.state.viewer = None  # the page names nobody: that needs the stores
            return await error_page(request, exc.status, exc.message,
                                    headers={"Retry-After": str(exc.retry_after)})
        return await error_page(request, exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Any:
        if not is_web(request) and api_http_error is not None:
            return await api_http_error(request, exc)
        assert isinstance(exc, HTTPException)
        if not is_web(request):
            from fastapi.exception_handlers import http_exception_handler

            return await http_exception_handler(request, exc)
        msg = "there is no page at this address" if exc.status_code == 404 else str(exc.detail)
        return await error_page(request, exc.status_code, msg)

    async def validation_error(request: Request, exc: Exception) -> Any:
        if not is_web(request):
            assert api_validation_error is not None
            return await api_validation_error(request, exc)
        return await error_page(request, 422, "the address or form is not valid")

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(HTTPException, http_error)
    if api_validation_error is not None:
        app.add_exception_handler(RequestValidationError, validation_error)
