"""64-bit time-ordered ids that cannot be guessed.

Layout (signed 64-bit, always positive): 41 bits of milliseconds since 2020-01-01 UTC, then 22
random bits. Ids sort by creation time (to the millisecond), so the home feed and cursors order by
id alone, and posts partition by id range per month. The 22 random bits (4 million values per
millisecond) make ids unguessable: enumerating them is hopeless, unlike the sequential ids that
let outsiders scrape the seed network. Collisions are astronomically rare and a unique key rejects
them anyway.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

EPOCH_MS = 1577836800000  # 2020-01-01T00:00:00Z
RANDOM_BITS = 22
MAX_ID = (1 << 63) - 1


def new_id(now_ms: int | None = None) -> int:
    ms = (int(time.time() * 1000) if now_ms is None else now_ms) - EPOCH_MS
    return (ms << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)


def id_floor(ms: int) -> int:
    """The smallest id that can be created at unix time `ms` (milliseconds)."""
    return max(0, ms - EPOCH_MS) << RANDOM_BITS


def id_for_datetime(dt: datetime) -> int:
    return id_floor(int(dt.timestamp() * 1000))


def id_time_ms(id_: int) -> int:
    return (id_ >> RANDOM_BITS) + EPOCH_MS


def id_datetime(id_: int) -> datetime:
    return datetime.fromtimestamp(id_time_ms(id_) / 1000, tz=UTC)


def parse_id(raw: str | int | None) -> int | None:
    """A public id from a URL or body, or None when it is not a valid positive 64-bit integer."""
    if raw is None:
        return None
    if isinstance(raw, int):
        return raw if 0 < raw <= MAX_ID else None
    s = raw.strip()
    if not s.isdigit() or len(s) > 19:
        return None
    v = int(s)
    return v if 0 < v <= MAX_ID else None
