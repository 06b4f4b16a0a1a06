"""The JSON API, versioned under /api/v1 (OpenAPI at /api/v1/openapi.json)."""

from __future__ import annotations

from fastapi import APIRouter

from freehold.app.api import accounts, feeds, moderation, posts
from freehold.app.api.schemas import errors

# every route may answer 503 when PostgreSQL or Redis is unavailable (app.unavailable)
v1 = APIRouter(prefix="/api/v1", responses=errors(503))
for r in (accounts.router, posts.router, feeds.router, moderation.router):
    v1.include_router(r)
