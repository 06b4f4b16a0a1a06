"""Workers: `python -m freehold.app.worker fanout|notify|trends|moderation`."""

from __future__ import annotations

from freehold.app.redis_client import STREAM_EVENTS, STREAM_POSTS
from freehold.app.worker import fanout, moderation, notify

# worker name → (stream, consumer group, handler)
STREAM_WORKERS = {
    "fanout": (STREAM_POSTS, "fanout", fanout.handle),
    "moderation": (STREAM_POSTS, "moderation", moderation.handle),
    "notify": (STREAM_EVENTS, "notify", notify.handle),
}
KINDS = (*STREAM_WORKERS, "trends")
