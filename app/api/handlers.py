"""The API's error answers: the services' errors, the framework's own refusals and invalid
requests, all in one JSON shape ({error, message, field?}); Retry-After where retrying helps.
The web UI installs its own page renderers over these (app.web)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException

from freehold.app.api.deps import JSON
from freehold.app.api.schemas import HTTP_ERROR_CODES
from freehold.app.services.errors import Retryable, ServiceError


async def service_error(request: Request, exc: ServiceError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Retryable) else None
    return JSON(exc.to_json(), status_code=exc.status, headers=headers)


async def http_error(request: Request, exc: HTTPException) -> Response:
    # the framework's own refusals (a body it cannot parse, no such route or method), in the
    # same shape as the services' errors (the web UI renders its pages instead)
    if not is_body_allowed_for_status_code(exc.status_code):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSON({"error": HTTP_ERROR_CODES.get(exc.status_code, "http_error"),
                 "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    errs: list[Any] = list(exc.errors())
    first = errs[0] if errs else {}
    if first.get("type") == "json_invalid":  # its loc is ("body", character offset)
        return JSON({"error": "invalid", "message": "body: not valid JSON", "field": None},
                    status_code=422)
    where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
    msg = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
    return JSON({"error": "invalid", "message": msg, "field": where or None}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
