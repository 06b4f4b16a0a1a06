"""Workers: `python -m app.worker fanout|notify|trends|moderation`."""

from __future__ import annotations

from app.redis_client import STREAM_EVENTS, STREAM_POSTS
from app.worker import fanout, moderation, notify

# worker name → (stream, consumer group, handler)
STREAM_WORKERS = {
    "fanout": (STREAM_POSTS, "fanout", fanout.handle),
    "moderation": (STREAM_POSTS, "moderation", moderation.handle),
    "notify": (STREAM_EVENTS, "notify", notify.handle),
}
KINDS = (*STREAM_WORKERS, "trends")
