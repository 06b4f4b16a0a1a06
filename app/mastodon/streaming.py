"""Mastodon's streaming API: `/api/v1/streaming` over server-sent events and WebSocket.

Streams: `user` (posts of the accounts one follows and one's own, one's notifications),
`user:notification`, `public` (and `public:local`, the same here: no federation; `:media`
variants keep posts with images), `hashtag` / `hashtag:local` (`tag=`). Events as Mastodon
sends them: `update` (a Status), `notification` (a Notification), `delete` (a status id).
SSE: `GET /api/v1/streaming/<stream path>` (`user`, `user/notification`, `public`,
`public/local`, `hashtag?tag=`…), one `event:`/`data:` block per event, a `:thump` comment
each heartbeat. WebSocket: `/api/v1/streaming?stream=…` (more with
`{"type": "subscribe", "stream": …, "tag": …}`), messages
`{"stream": [name(, tag)], "event": …, "payload": "<JSON text>"}`. The token comes in the
Authorization header, the `access_token` parameter or (WebSocket) Sec-WebSocket-Protocol.

Fed from what the workers consume (app.services.posts): each app process runs one `Hub`
while it has connections, reading `stream:posts` (new posts), `stream:events` (what becomes
a notification) and `stream:deletes` with XREAD (no consumer group: every process reads every
entry, from the moment it starts) and handing each entry to its own connections: a post to
those of its author's followers (one query over the accounts connected here), to public and
hashtag streams; rendered per viewer by app.mastodon.home (visibility: blocks, mutes,
hidden posts). A notification is sent once the notify worker stored it (its id is the
stored row's), looked for for a few seconds.

Connections per account are bounded across processes (`masto_stream_per_account`): each
open connection is a member of a Redis sorted set scored by its last heartbeat; members not
refreshed for four heartbeats (a process that died) no longer count. Past the bound: 429.
A connection whose client does not read (its queue of events full) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from freehold.app.context import Ctx
from freehold.app.mastodon import entities
from freehold.app.mastodon.home import Statuses, statuses_json
from freehold.app.redis_client import STREAM_DELETES, STREAM_EVENTS, STREAM_POSTS
from freehold.app.services import mastodon as store

log = logging.getLogger("freehold.streaming")
QUEUE_MAX = 256  # events waiting for a slow client; past it the connection is closed
SUBS_MAX = 32  # streams one WebSocket may subscribe to
BLOCK_MS = 1000  # one XREAD waits this long at most
NOTE_TRIES, NOTE_EVERY_S = 40, 0.1  # a notification is looked for this long (~4 s)
USER, PUBLIC, HASHTAG = "user", "public", "hashtag"
# stream name -> (kind, media only)
STREAMS = {"user": (USER, False), "user:notification": (USER, False),
           "public": (PUBLIC, False), "public:local": (PUBLIC, False),
           "public:media": (PUBLIC, True), "public:local:media": (PUBLIC, True),
           "public:remote": (PUBLIC, False), "public:remote:media": (PUBLIC, True),
           "hashtag": (HASHTAG, False), "hashtag:local": (HASHTAG, False)}
SCOPES = {"user:notification": "read:notifications"}  # else read:statuses
Sub = tuple[str, str]  # (stream name, tag or "")


class StreamRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sub_of(name: str | None, tag: str | None) -> Sub:
    """A subscription from a stream name and tag; StreamRefused (400) when unknown."""
    if not name or name not in STREAMS:
        raise StreamRefused(400, f"Unknown stream type: {name or ''}".strip())
    if STREAMS[name][0] == HASHTAG:
        t = (tag or "").lstrip("#").lower()[:64]
        if not t or not t.replace("_", "").isalnum():
            raise StreamRefused(400, "hashtag: the tag parameter names a hashtag")
        return name, t
    return name, ""


def stream_label(sub: Sub) -> list[str]:
    return [sub[0], sub[1]] if sub[1] else [sub[0]]


@dataclass(eq=False)
class Conn:
    """One streaming connection of an account (its subscriptions and waiting events)."""

    account_id: int
    base: entities.Base
    subs: set[Sub]
    queue: asyncio.Queue[tuple[Sub, str, str]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    overflowed: bool = False
    id: str = field(default_factory=lambda: secrets.token_hex(8))

    def push(self, sub: Sub, event: str, payload: str) -> None:
        try:
            self.queue.put_nowait((sub, event, payload))
        except asyncio.QueueFull:
            self.overflowed = True

    def users(self) -> list[Sub]:
        return [s for s in self.subs if s[0] == "user"]


def conns_key(account_id: int) -> str:
    return f"streaming:conns:{account_id}"


async def admit(ctx: Ctx, conn: Conn) -> None:
    """Count the connection against its account's bound (StreamRefused 429 past it)."""
    key, now = conns_key(conn.account_id), time.time()
    stale = 4 * max(1, ctx.settings.masto_stream_heartbeat_s)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", now - stale)
    pipe.zadd(key, {conn.id: now})
    pipe.zcard(key)
    pipe.expire(key, stale)
    n = (await pipe.execute())[2]
    most = ctx.settings.masto_stream_per_account
    if most > 0 and n > most:
        await ctx.redis.zrem(key, conn.id)
        raise StreamRefused(429, f"Too many streaming connections for this account (at most "
                                 f"{most} at once): close one first")


async def refresh(ctx: Ctx, conn: Conn) -> None:
    key = conns_key(conn.account_id)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zadd(key, {conn.id: time.time()})
    pipe.expire(key, 4 * max(1, ctx.settings.masto_stream_heartbeat_s))
    await pipe.execute()


async def _release(ctx: Ctx, conn: Conn) -> None:
    with contextlib.suppress(Exception):  # a member left behind stops counting when stale
        await ctx.redis.zrem(conns_key(conn.account_id), conn.id)


POST_SQL = """SELECT author_id, reply_to_id IS NOT NULL AS reply, echo_of_id IS NOT NULL AS echo,
  media <> '[]'::jsonb AS media, ARRAY(SELECT tag FROM post_tags WHERE post_id = p.id) AS tags
FROM posts p WHERE id = $1"""
NOTE_SQL = """SELECT id, kind, actor_id, post_id AS status_id FROM notifications
WHERE account_id = $1 AND kind = $2 AND actor_id = $3 AND coalesce(post_id, 0) = $4"""


class Hub:
    """The streaming connections of this process and the readers that feed them."""

    def __init__(self, ctx: Ctx, statuses: Statuses) -> None:
        self.ctx = ctx
        self.statuses = statuses
        self.conns: set[Conn] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.jobs: set[asyncio.Task[None]] = set()
        self.delivered = 0

    def join(self, conn: Conn) -> None:
        self.conns.add(conn)
        if not self.tasks:
            self.tasks = [asyncio.ensure_future(self._follow(s, h, wait)) for s, h, wait in (
                (STREAM_POSTS, self._post, True), (STREAM_EVENTS, self._event, False),
                (STREAM_DELETES, self._delete, True))]

    def leave(self, conn: Conn) -> None:
        """The connection ended: no more events, and it no longer counts against its
        account's bound (in a task: the caller may be cancelled, as a response is when its
        client goes away)."""
        self.conns.discard(conn)
        job = asyncio.ensure_future(_release(self.ctx, conn))
        self.jobs.add(job)
        job.add_done_callback(self.jobs.discard)
        if not self.conns:
            for t in self.tasks:
                t.cancel()
            self.tasks = []

    async def _follow(self, stream: str, handle: Any, in_order: bool) -> None:
        """Hand every new entry of `stream` to `handle`, while this process has connections:
        one after the other (`in_order`: posts and deletes reach clients in their order), or
        each in a task of its own (a notification waits for the notify worker)."""
        redis = self.ctx.redis
        # from a second before the first connection joined (entry ids are Redis's clock in
        # ms): what was added while the readers started is not missed
        last = f"{int(time.time() * 1000) - 1000}-0"
        while self.conns:  # bounded by the connections' lifetime (leave cancels it too)
            try:
                got = await redis.xread({stream: last}, count=100, block=BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: try again in a moment
                log.warning("streaming: reading %s failed: %s", stream, exc)
                await asyncio.sleep(1)
                continue
            for _, entries in got or ():
                for eid, fields in entries:
                    last = eid
                    if in_order:
                        await self._safe(handle, fields)
                        continue
                    job = asyncio.ensure_future(self._safe(handle, fields))
                    self.jobs.add(job)
                    job.add_done_callback(self.jobs.discard)

    @staticmethod
    async def _safe(handle: Any, fields: dict[str, str]) -> None:
        try:
            await handle(fields)
        except Exception:  # noqa: BLE001 - one entry's failure must not stop the stream
            log.exception("streaming: an entry could not be delivered: %s", fields)

    async def _post(self, fields: dict[str, str]) -> None:
        conns = list(self.conns)
        if not conns:
            return
        pid = int(fields["post"])
        ctx = self.ctx
        row = await ctx.db.fetchrow(POST_SQL, pid)
        if row is None:
            return
        readers = await self._readers(conns, row["author_id"])
        tags = set(row["tags"])
        plain = not row["reply"] and not row["echo"]
        groups: dict[tuple[int, str], list[tuple[Conn, list[Sub]]]] = {}
        for c in conns:
            subs = [s for s in c.subs if _matches(s, c.account_id in readers, plain,
                                                  row["media"], tags)]
            if subs:
                groups.setdefault((c.account_id, c.base.base), []).append((c, subs))
        if not groups:
            return
        keys = list(groups)
        rendered = await asyncio.gather(*(
            statuses_json(ctx, self.statuses, groups[k][0][0].base, k[0], [pid])
            for k in keys))
        for k, items in zip(keys, rendered, strict=True):
            if not items:
                continue  # not visible to this account (block, mute, hidden)
            payload = items[0].decode()
            for c, subs in groups[k]:
                for s in subs:
                    c.push(s, "update", payload)
                    self.delivered += 1

    async def _event(self, fields: dict[str, str]) -> None:
        target = int(fields["target"])
        conns = [c for c in self.conns if c.account_id == target and c.users()]
        if not conns:
            return
        ctx = self.ctx
        args = (target, fields["kind"], int(fields["actor"]), int(fields.get("post") or 0))
        row = None
        for _ in range(NOTE_TRIES):  # the notify worker stores it: its id is the row's
            row = await ctx.db.fetchrow(NOTE_SQL, *args)
            if row is not None:
                break
            await asyncio.sleep(NOTE_EVERY_S)
        if row is None:
            return
        by_base: dict[str, str | None] = {}
        for c in conns:
            if c.base.base not in by_base:
                by_base[c.base.base] = await self._note(c, row)
            payload = by_base[c.base.base]
            if payload is not None:
                for s in c.users():
                    c.push(s, "notification", payload)
                    self.delivered += 1

    async def _note(self, c: Conn, row: Any) -> str | None:
        ctx = self.ctx
        actors = await store.accounts_by_id(ctx, [row["actor_id"]], ctx.db)
        if row["actor_id"] not in actors:
            return None
        status = None
        if row["status_id"]:
            items = await statuses_json(ctx, self.statuses, c.base, c.account_id,
                                        [row["status_id"]])
            if not items:
                return None
            status = orjson.Fragment(items[0])
        doc = entities.notification(row, entities.account(c.base, actors[row["actor_id"]]),
                                    status)  # type: ignore[arg-type]
        return orjson.dumps(doc).decode()

    async def _readers(self, conns: list[Conn], author: int) -> set[int]:
        """The accounts connected here whose `user` stream carries `author`'s posts: its
        followers, and the author."""
        users = {c.account_id for c in conns if c.users()}
        if not users:
            return set()
        readers = {r[0] for r in await self.ctx.db.fetch(
            "SELECT follower_id FROM follows WHERE followee_id = $1"
            " AND follower_id = ANY($2::bigint[])", author, list(users))}
        if author in users:
            readers.add(author)
        return readers

    async def _delete(self, fields: dict[str, str]) -> None:
        """A deleted post's id, to the streams its post went to (as Mastodon does: the
        author's followers' and the author's `user`, `public`, its hashtags'), not to all."""
        conns = list(self.conns)
        if not conns:
            return
        pid = fields["post"]
        if "author" not in fields:  # an entry written before deletes said where: to all
            for c in conns:
                for s in c.subs:
                    if s[0] != "user:notification":
                        c.push(s, "delete", pid)
            return
        readers = await self._readers(conns, int(fields["author"]))
        plain = fields.get("reply") != "1" and fields.get("echo") != "1"
        media, tags = fields.get("media") == "1", set(fields.get("tags", "").split())
        for c in conns:
            for s in c.subs:
                if _matches(s, c.account_id in readers, plain, media, tags):
                    c.push(s, "delete", pid)


def _matches(sub: Sub, reads_author: bool, plain: bool, media: bool, tags: set[str]) -> bool:
    name, tag = sub
    kind, media_only = STREAMS[name]
    if kind == USER:
        return name == "user" and reads_author
    if name.startswith("public:remote"):
        return False  # no federation: nothing remote
    if media_only and not media:
        return False
    if kind == PUBLIC:
        return plain
    return tag in tags


def hub_of(app: Any) -> Hub:
    hub = getattr(app.state, "hub", None)
    if hub is None:
        hub = app.state.hub = Hub(app.state.ctx, app.state.statuses)
    return hub  # type: ignore[no-any-return]


async def sse_events(ctx: Ctx, hub: Hub, conn: Conn) -> AsyncIterator[bytes]:
    """The SSE body of an admitted connection (joins the hub; leaves and releases at the
    end, the client gone)."""
    beat = max(1, ctx.settings.masto_stream_heartbeat_s)
    hub.join(conn)
    try:
        yield b":)\n\n"
        next_beat = time.monotonic() + beat
        while not conn.overflowed:  # bounded by the connection's lifetime
            try:
                async with asyncio.timeout(max(0.0, next_beat - time.monotonic())):
                    _, event, payload = await conn.queue.get()
                yield f"event: {event}\ndata: {payload}\n\n".encode()
            except TimeoutError:
                pass
            if time.monotonic() >= next_beat:
                await refresh(ctx, conn)
                yield b":thump\n\n"
                next_beat = time.monotonic() + beat
    finally:
        hub.leave(conn)
