"""Errors the service layer raises; the API and the web UI turn them into responses."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field:
            doc["field"] = self.field
        return doc


class Invalid(ServiceError):
    status = 422
    code = "invalid"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Suspended(Forbidden):
    code = "suspended"


class Retryable(ServiceError):
    """An error that passes: answered with Retry-After (seconds, at least 1)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class RateLimited(Retryable):
    status = 429
    code = "rate_limited"


class Unavailable(Retryable):
    """PostgreSQL or Redis cannot answer for a moment (app.unavailable)."""

    status = 503
    code = "unavailable"
