"""The Mastodon home timeline on the native feed's cached path.

`GET /api/v1/timelines/home` is what every Mastodon client polls. Its ids come from the
fanned-out feed (app.services.feed.home_ids: one coalesced Redis round trip); its Status
entities are kept rendered, as the native feed keeps its items (app.services.postjson):

- an item's key is the post id, the row versions (xmin) of the post, its author, the echoed
  post and its author, and the viewer's flags (favourited, reblogged; of the echoed post too).
  A counter, `hidden`, a profile, a new post of the author (posts_count) all make a new row
  version, so a new key; what else a Status shows never changes (text, mentions, reply
  author, media once posted: posts are not edited);
- one query (KEYS_SQL) gives the keys of a page's items for all the requests in flight
  (app.batching); the items held are joined as bytes, the others read whole (the Status query
  of app.services.mastodon, with their keys) and rendered once per key;
- rendered Statuses carry absolute URLs, so they are held per base URL (scheme and host).

`Fast` answers the plain requests (`limit` and `max_id` only, an OAuth token this process
may check in the same Redis round trip as the rate-limit count) before the framework: its
answer is the route's (same bytes, Link, CORS and X-RateLimit-* headers). Anything else —
since_id / min_id, a token whose grant is not cached, any error — goes to the route, which
renders through the same memory (`statuses_json`).
"""

from __future__ import annotations

import time
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson

from freehold.app import readwrite
from freehold.app.batching import Batcher
from freehold.app.context import ITEMS_MAX_AGE_S, Ctx, LocalCache
from freehold.app.ids import parse_id
from freehold.app.mastodon import entities
from freehold.app.mastodon.middleware import count
from freehold.app.metrics import observe
from freehold.app.services import feed, oauth
from freehold.app.services import mastodon as store
from freehold.app.services.accounts import oauth_cache_key
from freehold.app.services.errors import ServiceError
from freehold.app.services.posts import HYDRATE_FROM_TEMPLATE, UNSEEN_TEMPLATE
from freehold.app.unavailable import STORE_ERRORS

HOME = "/api/v1/timelines/home"
DEFAULT_LIMIT, MAX_LIMIT = 20, 40
BASES_MAX = 16  # base URLs held at once (the Host header is the client's: bounded)
_UP = "EXISTS (SELECT 1 FROM upvotes u WHERE u.account_id = {v} AND u.post_id = {p}.id)"
_ECHOED = ("EXISTS (SELECT 1 FROM posts x WHERE x.echo_of_id = {p}.id AND x.author_id = {v}"
           " AND x.body = '')")


def _flags(v: str, p: str) -> str:
    return (f"CASE WHEN {_UP.format(v=v, p=p)} THEN '+' ELSE '-' END"
            f" || CASE WHEN {_ECHOED.format(v=v, p=p)} THEN '+' ELSE '-' END")


def _key(v: str) -> str:
    """An item's key (see the module doc) for the viewer `v`."""
    return (f"p.id::text || '.' || p.xmin::text || '.' || a.xmin::text"
            f" || coalesce('.' || e.xmin::text || '.' || ea.xmin::text || {_flags(v, 'e')}, '')"
            f" || {_flags(v, 'p')}")


# keys of the items of concurrent requests' pages: ($1, $2, $3) each request's (viewer, first
# index in $4, number of posts), $4 the posts; one row per request that has any
KEYS_SQL = UNSEEN_TEMPLATE.format(viewers="$1::bigint[]") + f"""
SELECT r.req, array_agg({_key('r.viewer')} ORDER BY q.n) AS keys
""" + HYDRATE_FROM_TEMPLATE.format(
    source="unnest($4::bigint[]) WITH ORDINALITY AS q(pid, n) "
           "JOIN unnest($1::bigint[], $2::int[], $3::int[]) WITH ORDINALITY "
           "AS r(viewer, start, cnt, req) ON q.n > r.start AND q.n <= r.start + r.cnt "
           "JOIN posts p ON p.id = q.pid",
    viewer="r.viewer") + "GROUP BY r.req\n"
# the Status rows of posts $1 as seen by $2, with their keys
assert store.STATUS_SQL.count("\nSELECT ") == 1
KEYED_STATUS_SQL = store.STATUS_SQL.replace("\nSELECT ", f"\nSELECT {_key('$2')} AS key, ", 1)
Ask = tuple[int, list[int]]


class Statuses:
    """Rendered Status entities by base URL and key (see the module doc); bounded in size
    and age (row versions come round again)."""

    def __init__(self, max_items: int = 100_000) -> None:
        self.max_items = max_items
        self.by_base: dict[str, LocalCache[str, bytes]] = {}
        self.kept = self.made = 0  # items taken from memory / rendered, for tests and benches

    def held(self, base: str) -> LocalCache[str, bytes]:
        c = self.by_base.get(base)
        if c is None:
            if len(self.by_base) >= BASES_MAX:
                self.by_base.clear()
            c = self.by_base[base] = LocalCache(self.max_items, ITEMS_MAX_AGE_S)
        c.expire()
        return c


def _keys_batcher(ctx: Ctx) -> Batcher[Ask, list[str]]:
    b = ctx.batchers.get("masto_keys")
    if b is None:
        async def run(asks: list[Ask]) -> list[list[str]]:
            counts = [len(ids) for _, ids in asks]
            out: list[list[str]] = [[] for _ in asks]
            for req, keys in await ctx.ro.fetch(
                    KEYS_SQL, [v for v, _ in asks], [0, *accumulate(counts[:-1])], counts,
                    [i for _, ids in asks for i in ids]):
                out[req - 1] = keys
            return out

        b = ctx.batchers["masto_keys"] = Batcher("masto_keys", run)
    return b


async def statuses_json(ctx: Ctx, memory: Statuses, b: entities.Base, viewer: int,
                        ids: list[int]) -> list[bytes]:
    """The Status entities (JSON) of the posts `ids` the viewer may see, in that order."""
    if not ids:
        return []
    keys = await _keys_batcher(ctx)((viewer, ids))
    held = memory.held(b.base)
    items = list(map(held.get, keys))
    missing = [k for k, item in zip(keys, items, strict=True) if item is None]
    memory.kept += len(keys) - len(missing)
    if not missing:
        return items  # type: ignore[return-value]
    memory.made += len(missing)
    made = await _make(ctx, held, b, viewer, [int(k[:k.index(".")]) for k in missing])
    return [x for x in (item if item is not None else made.get(k[:k.index(".")], b"")
                        for item, k in zip(items, keys, strict=True)) if x]


async def _make(ctx: Ctx, held: LocalCache[str, bytes], b: entities.Base, viewer: int,
                ids: list[int]) -> dict[str, bytes]:
    """Read and render the Statuses `ids`, keep them by key; returns them by post id (text);
    b"" for a post a page leaves out (a plain echo of a post gone or hidden)."""
    rows = await ctx.ro.fetch(KEYED_STATUS_SQL, ids, viewer)
    accts = await store.accounts_by_id(ctx, entities.account_ids_of(list(rows)))
    r = entities.StatusRenderer(b, accts)
    out: dict[str, bytes] = {}
    for row in rows:
        item = b""
        if row["author_id"] in accts and \
                (row["e_id"] is None or row["e_author_id"] in accts) and \
                not (row["echo_of_id"] and not row["body"] and
                     (row["e_id"] is None or row["e_hidden"])):
            item = orjson.dumps(r.status(row))
        held.put(row["key"], item)
        out[str(row["id"])] = item
    return out


def link_header(base: str, path: str, query: list[tuple[str, str]], ids: list[int],
                limit: int) -> str | None:
    """Mastodon's Link header of a page (app.mastodon.deps.paged)."""
    if not ids:
        return None
    keep = [(k, quote(v, safe="[]")) for k, v in query if k not in ("max_id", "min_id",
                                                                     "since_id")]

    def link(name: str, value: int, rel: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in [*keep, (name, str(value))])
        return f'<{base}{path}?{q}>; rel="{rel}"'

    links = [link("max_id", ids[-1], "next")] if len(ids) >= limit else []
    links.append(link("min_id", ids[0], "prev"))
    return ", ".join(links)


def _plain(query: bytes) -> tuple[list[tuple[str, str]], int, int | None] | None:
    """(the query's pairs, limit, max_id) when it has only those two, each once; else None."""
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names) or not set(names) <= {"limit", "max_id"}:
        return None
    got = dict(pairs)
    raw = got.get("limit", "")
    if raw and not (raw.isdigit() and len(raw) < 7):
        return None
    limit = max(1, min(int(raw), MAX_LIMIT)) if raw else DEFAULT_LIMIT
    max_id = None
    if got.get("max_id"):
        max_id = parse_id(got["max_id"])
        if max_id is None:
            return None
    return pairs, limit, max_id


class Fast:
    """The Mastodon API's ASGI entry: plain home-timeline reads answered here (see the module
    doc), everything else by `api`, the FastAPI app."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.state = api.state
        self.statuses = api.state.statuses = Statuses()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == HOME:
            start = time.perf_counter()
            if await self._home(scope, send):
                observe("GET", HOME, 200, time.perf_counter() - start)
                return
        await self.api(scope, receive, send)

    async def _home(self, scope: dict[str, Any], send: Any) -> bool:
        ctx: Ctx | None = getattr(self.state, "ctx", None)
        plain = _plain(scope["query_string"])
        token = host = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, t = value.decode("latin-1").partition(" ")
                token = t.strip() if scheme.lower() == "bearer" else None
            elif name == b"host":
                host = value.decode("latin-1")
        if ctx is None or plain is None or not token or not host or len(token) > 200 or \
                not token.startswith(oauth.TOKEN_PREFIX):
            return False
        pairs, limit, max_id = plain
        try:
            extra, refusal, raw = await count(ctx, scope, oauth_cache_key(oauth.digest(token)))
            if refusal is not None:
                await refusal(send)
                return True
            if raw is None:
                return False  # not cached: the route resolves it (and caches it)
            grant = oauth._parse_grant(raw)
            if grant.account_id is None or not grant.allows("read:statuses"):
                return False  # the route answers 401 / 403
            if ctx.has_replica:
                await readwrite.reading(ctx, grant.account_id)
            ids, _ = await feed.home_ids(ctx, grant.account_id, limit,
                                         str(max_id) if max_id else None)
            base = f"{scope.get('scheme', 'http')}://{host}"
            b = entities.Base(base, ctx.settings.media_url_prefix)
            items = await statuses_json(ctx, self.statuses, b, grant.account_id, ids)
        except (ServiceError, *STORE_ERRORS):
            return False  # the route answers it (a store unavailable: 503)
        body = b"[" + b",".join(items) + b"]"
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(body))]
        link = link_header(b.base, HOME, pairs, ids, limit)
        if link:
            headers.append((b"link", link.encode()))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, *extra]})
        await send({"type": "http.response.body", "body": body})
        return True
