"""The JSON API, versioned under /api/v1 (OpenAPI at /api/v1/openapi.json)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import accounts, feeds, moderation, posts

v1 = APIRouter(prefix="/api/v1")
for r in (accounts.router, posts.router, feeds.router, moderation.router):
    v1.include_router(r)
