"""The home feed's fast path: the session checked inside the feed's Redis round trip, and big
accounts' lists read deeper than their first ids only when needed — both must give what the
slow paths give."""

from __future__ import annotations

import io
import time
from typing import Any

import orjson
from starlette.testclient import TestClient

from freehold.app.services import feed
from tests.integration.app.conftest import home_ids, new_user, streams_idle


def test_logout_ends_the_hinted_session(client: TestClient) -> None:
    u = new_user(client, "hs")
    assert home_ids(client, u) == []  # this process now knows the token
    assert home_ids(client, u) == []  # ...and takes the one-round-trip path
    assert client.post("/api/v1/auth/logout", headers=u.h).status_code == 204
    r = client.get("/api/v1/timelines/home", headers=u.h)
    assert r.status_code == 401
    assert client.get("/api/v1/timelines/home",
                      headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def test_big_account_pages_match_pull(client: TestClient, workers: Any, rds: Any) -> None:
    """More posts of a big account than the first read of its list takes: every page, through
    the cursor, matches the pull-on-read SQL."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    reader, small, big = new_user(client, "hp"), new_user(client, "hp"), new_user(client, "hp")
    for fan in [reader] + [new_user(client, "hf") for _ in range(settings.big_account_followers)]:
        assert client.post(f"/api/v1/accounts/{big.id}/follow", headers=fan.h).status_code == 200
    assert client.post(f"/api/v1/accounts/{small.id}/follow",
                       headers=reader.h).status_code == 200
    home_ids(client, reader)  # cached: the small account is fanned out into it
    for i in range(feed.BIG_HEAD + 8):
        for author in (big, small) if i % 4 == 0 else (big,):
            r = client.post("/api/v1/posts", headers=author.h, json={"body": f"p{i}"})
            assert r.status_code == 201, r.text
    streams_idle(rds)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    want = [str(i) for i in client.portal.call(  # type: ignore[union-attr]
        feed.pull_ids, ctx, int(reader.id), 100)]
    for first in (True, False):  # a cold process (no hints), then the hinted path
        if first:
            ctx.big_hints = type(ctx.big_hints)()
        seen: list[str] = []
        cursor = None
        for _ in range(20):
            params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/timelines/home", params=params, headers=reader.h).json()
            seen += [p["id"] for p in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == want


def test_feed_json_matches_the_documents(client: TestClient, workers: Any, rds: Any) -> None:
    """The home feed's JSON (rendered parts kept per process, fresh counters) is the same as
    the documents every other page builds: replies, echoes with and without comment, images,
    an upvote, a muted author."""
    from freehold.app.services import posts
    from freehold.app.services.postjson import hydrate_json
    from tests.integration.app.test_accounts import tiny_png

    reader, a, b, muted = (new_user(client, "hj") for _ in range(4))
    for who in (a, b, muted):
        assert client.post(f"/api/v1/accounts/{who.id}/follow",
                           headers=reader.h).status_code == 200
    mid = client.post("/api/v1/media", headers=a.h, files={
        "file": ("p.png", io.BytesIO(tiny_png()), "image/png")}).json()["id"]
    p1 = client.post("/api/v1/posts", headers=a.h,
                     json={"body": "hi #tag @" + b.username, "media_ids": [mid]}).json()
    p2 = client.post("/api/v1/posts", headers=b.h,
                     json={"body": "a reply", "reply_to_id": p1["id"]}).json()
    gone = client.post("/api/v1/posts", headers=b.h, json={"body": "soon gone"}).json()
    for body, target in (("", p1["id"]), ("quoting", p2["id"]), ("", gone["id"])):
        r = client.post(f"/api/v1/posts/{target}/echo", headers=a.h, json={"body": body})
        assert r.status_code == 201, r.text
    assert client.delete(f"/api/v1/posts/{gone['id']}", headers=b.h).status_code == 204
    client.post("/api/v1/posts", headers=muted.h, json={"body": "muted"})
    assert client.post(f"/api/v1/accounts/{muted.id}/mute", headers=reader.h).status_code == 200
    assert client.post(f"/api/v1/posts/{p2['id']}/upvote", headers=reader.h).status_code == 200
    streams_idle(rds)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    ids, _ = client.portal.call(feed.home_ids, ctx, int(reader.id), 40, None)  # type: ignore
    assert len(ids) == 5  # p1, p2, two echoes (the echo of the deleted post went with it), muted
    for cold in (True, False):  # rendered from the query's text, then from the kept parts
        ctx.items.clear()  # (no kept items: each is made from its row)
        if cold:
            ctx.post_parts = type(ctx.post_parts)()
        docs = client.portal.call(posts.hydrate, ctx, int(reader.id), ids)  # type: ignore
        fast = client.portal.call(hydrate_json, ctx, int(reader.id), ids)  # type: ignore
        assert [orjson.loads(x) for x in fast] == docs
        assert len(docs) == 4  # the muted post left out
    page = client.get("/api/v1/timelines/home", headers=reader.h).json()["items"]
    assert page == docs
    assert next(p for p in page if p["id"] == p2["id"])["upvoted"] is True
    assert client.post(f"/api/v1/posts/{p2['id']}/upvote", headers=a.h).status_code == 200
    page = client.get("/api/v1/timelines/home", headers=reader.h).json()["items"]
    assert next(p for p in page if p["id"] == p2["id"])["upvotes_count"] == 2  # fresh


def test_fast_path_answers_plain_requests_only(client: TestClient) -> None:
    """The home feed is answered before routing when the token is known to this process and
    the query is one the route takes; everything else reaches the route, which refuses what
    it always refused."""
    from freehold.app.api.fastpath import FeedApp

    app = client.app
    assert isinstance(app, FeedApp)
    answered: list[bool] = []
    real = app._answer

    async def spy(scope: Any) -> bytes | None:
        got = await real(scope)
        answered.append(got is not None)
        return got

    u = new_user(client, "fp")
    app._answer = spy  # type: ignore[method-assign]
    try:
        url = "/api/v1/timelines/home"
        first = client.get(url, params={"limit": 5}, headers=u.h)
        again = client.get(url, params={"limit": 5}, headers=u.h)
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json()
        assert answered == [False, True]  # the first request taught this process the token
        bad = client.get(url, params={"limit": 500}, headers=u.h)  # past feed_page_max
        assert bad.status_code == 422 and bad.json()["field"] == "limit"
        bad = client.get(url, params={"limit": 0}, headers=u.h)
        assert bad.status_code == 422 and bad.json()["field"] == "query.limit"
        bad = client.get(url, params={"cursor": "x"}, headers=u.h)
        assert bad.status_code == 422
        assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get(url).status_code == 401
        assert answered[2:] == [False, False, False, False, False]
    finally:
        del app._answer
    metrics = client.get("/metrics").text
    assert 'route="/api/v1/timelines/home",status="200"' in metrics


def test_big_heads_kept_for_their_time(client: TestClient, workers: Any, rds: Any) -> None:
    """A process keeps the newest ids of big accounts for `big_head_ttl_ms`: another process's
    new post shows once that time has passed; this process's own post shows at once."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    reader, big = new_user(client, "bh"), new_user(client, "bh")
    for fan in [reader] + [new_user(client, "bf") for _ in range(settings.big_account_followers)]:
        assert client.post(f"/api/v1/accounts/{big.id}/follow", headers=fan.h).status_code == 200
    first = client.post("/api/v1/posts", headers=big.h, json={"body": "one"}).json()["id"]
    assert home_ids(client, reader) == [first]  # this process's own write: at once
    held = ctx.big_heads.get(int(big.id))
    assert held is not None and held[1] == [int(first)]
    second = client.post("/api/v1/posts", headers=big.h, json={"body": "two"}).json()["id"]
    assert home_ids(client, reader) == [second, first]
    # as another process holds it: read (just now) before the post
    ctx.big_heads.put(int(big.id), (time.monotonic(), *held[1:]))
    assert home_ids(client, reader) == [first]
    stale = held[0] - settings.big_head_ttl_ms / 1000 - 0.01
    ctx.big_heads.put(int(big.id), (stale, *held[1:]))
    assert home_ids(client, reader) == [second, first]


def test_concurrent_pages_share_one_query_and_keep_their_viewers(
        client: TestClient, workers: Any, rds: Any) -> None:
    """Pages of concurrent requests are fetched by one query (app.batching): each viewer still
    gets its own page — a post of an account one reader muted and the other did not, an upvote
    of one reader only — the same documents `posts.hydrate` gives each."""
    import asyncio

    from freehold.app.services import posts
    from freehold.app.services.postjson import _pages_batcher, hydrate_json

    r1, r2, author = new_user(client, "cb"), new_user(client, "cb"), new_user(client, "cb")
    ids = [int(client.post("/api/v1/posts", headers=author.h, json={"body": f"b{i}"}).json()["id"])
           for i in range(3)]
    assert client.post(f"/api/v1/accounts/{author.id}/mute", headers=r1.h).status_code == 200
    assert client.post(f"/api/v1/posts/{ids[1]}/upvote", headers=r2.h).status_code == 200
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    batcher = _pages_batcher(ctx)

    async def both() -> tuple[list[list[bytes]], int, int]:
        before = (batcher.batches, batcher.items)
        got = await asyncio.gather(*(hydrate_json(ctx, int(u.id), ids) for u in (r1, r2, r2)))
        return list(got), batcher.batches - before[0], batcher.items - before[1]

    pages, batches, items = client.portal.call(both)  # type: ignore[union-attr]
    assert (batches, items) == (1, 3)  # three requests, one query
    assert pages[0] == []  # r1 muted the author
    docs = client.portal.call(posts.hydrate, ctx, int(r2.id), ids)  # type: ignore[union-attr]
    assert [orjson.loads(x) for x in pages[1]] == docs == [orjson.loads(x) for x in pages[2]]
    assert [d["upvoted"] for d in docs] == [False, True, False]


def test_concurrent_pages_leave_out_what_each_viewer_must_not_see(
        client: TestClient, workers: Any, rds: Any) -> None:
    """One query for several viewers (the `unseen` table of blocks and mutes, made once per
    query): a block either way and a mute hide a post from that viewer only, an echo of a
    muted account's post too; each page is what `posts.hydrate` gives that viewer."""
    import asyncio

    from freehold.app.services import posts
    from freehold.app.services.postjson import _pages_batcher, hydrate_json

    blocker, blocked, muter, free = (new_user(client, "uv") for _ in range(4))
    author, echoer = new_user(client, "uv"), new_user(client, "uv")
    own = int(client.post("/api/v1/posts", headers=author.h, json={"body": "a"}).json()["id"])
    other = int(client.post("/api/v1/posts", headers=echoer.h, json={"body": "e"}).json()["id"])
    echo = int(client.post(f"/api/v1/posts/{own}/echo", headers=echoer.h,
                           json={}).json()["id"])
    ids = [echo, other, own]
    h = {"blocker": blocker.h, "author": author.h, "muter": muter.h}
    assert client.post(f"/api/v1/accounts/{author.id}/block", headers=h["blocker"]).status_code \
        == 200
    assert client.post(f"/api/v1/accounts/{blocked.id}/block", headers=h["author"]).status_code \
        == 200
    assert client.post(f"/api/v1/accounts/{author.id}/mute", headers=h["muter"]).status_code \
        == 200
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    batcher = _pages_batcher(ctx)
    viewers = (blocker, blocked, muter, free)

    async def all_at_once() -> tuple[list[list[bytes]], int]:
        before = batcher.batches
        got = await asyncio.gather(*(hydrate_json(ctx, int(u.id), ids) for u in viewers))
        return list(got), batcher.batches - before

    pages, batches = client.portal.call(all_at_once)  # type: ignore[union-attr]
    assert batches == 1
    seen = [[orjson.loads(x)["id"] for x in page] for page in pages]
    # the echo and the echoed post are the author's to three of them; only `free` sees them
    assert seen == [[str(other)], [str(other)], [str(other)], [str(i) for i in ids]]
    for u, page in zip(viewers, pages, strict=True):
        docs = client.portal.call(posts.hydrate, ctx, int(u.id), ids)  # type: ignore
        assert [orjson.loads(x) for x in page] == docs


def test_concurrent_redis_reads_share_one_pipeline(client: TestClient, rds: Any) -> None:
    """Read commands of concurrent callers go out in one pipeline, a command wanted twice sent
    once; a command's error reaches the callers that sent it, not the others."""
    import asyncio

    rds.delete("bt:list", "bt:str")
    rds.rpush("bt:list", "3", "2", "1")
    rds.set("bt:str", "x")
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    sent: list[int] = []
    wire = ctx.reads.wire  # a single Redis: the reads go on app.redis_wire's connection
    assert wire is not None
    real = wire.execute

    async def counting(cmds: list[Any]) -> Any:
        sent.append(len(cmds))
        return await real(cmds)

    async def reads() -> list[Any]:
        return list(await asyncio.gather(
            ctx.reads([("lrange", "bt:list", 0, -1), ("get", "bt:str")]),
            ctx.reads([("get", "bt:str")]),
            ctx.reads([("lrange", "bt:str", 0, -1)]),  # WRONGTYPE
            return_exceptions=True))

    wire.execute = counting
    try:
        a, b, c = client.portal.call(reads)  # type: ignore[union-attr]
    finally:
        del wire.execute
    assert a == [["3", "2", "1"], "x"] and b == ["x"]
    assert isinstance(c, Exception) and "WRONGTYPE" in str(c)
    assert sent == [3]  # one pipeline: lrange, get (once), the failing lrange


def test_parts_emptied_during_the_query_are_not_lost(client: TestClient, monkeypatch: Any
                                                     ) -> None:
    """The per-process parts cache can be emptied (it is bounded) while a page's query runs:
    the page is still whole (the parts held when the request began are kept for it)."""
    from freehold.app.services import postjson, posts

    reader, author = new_user(client, "pe"), new_user(client, "pe")
    p = client.post("/api/v1/posts", headers=author.h, json={"body": "whole #text"}).json()
    e = client.post(f"/api/v1/posts/{p['id']}/echo", headers=author.h,
                    json={"body": "quoting"}).json()
    ids = [int(e["id"]), int(p["id"])]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    want = client.portal.call(posts.hydrate, ctx, int(reader.id), ids)  # type: ignore
    client.portal.call(postjson.hydrate_json, ctx, int(reader.id), ids)  # type: ignore
    assert ctx.post_parts.get(ids[0]) and ctx.post_parts.get(ids[1])  # held
    real = postjson._make

    class Emptying:  # the connection, whose queries the cache lets go of everything during
        def __init__(self, con: Any) -> None:
            self.con = con

        async def fetch(self, *args: Any) -> Any:
            ctx.post_parts = type(ctx.post_parts)()
            return await self.con.fetch(*args)

    async def emptied(c: Any, con: Any, pairs: Any) -> Any:
        return await real(c, Emptying(con), pairs)

    monkeypatch.setattr(postjson, "_make", emptied)
    ctx.items.clear()  # no kept items: the rows are read whole, parts wanted
    got = client.portal.call(postjson.hydrate_json, ctx, int(reader.id), ids)  # type: ignore
    assert [orjson.loads(x) for x in got] == want
    assert want[1]["body"] == "whole #text" and want[0]["echo_of"]["body"] == "whole #text"


def test_an_echoed_post_forgotten_by_the_process_is_read_again(client: TestClient) -> None:
    """The process's memories are bounded and emptied when full: an echo whose text is still
    held while the echo link and the echoed post's text are gone makes the query send neither
    text; the echoed post is read again, not rendered with an empty body (it was before)."""
    from freehold.app.services import posts
    from freehold.app.services.postjson import hydrate_json

    reader, author, echoer = (new_user(client, "lo") for _ in range(3))
    own = int(client.post("/api/v1/posts", headers=author.h, json={"body": "kept #x"}).json()[
        "id"])
    echo = int(client.post(f"/api/v1/posts/{own}/echo", headers=echoer.h, json={}).json()["id"])
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    first = client.portal.call(hydrate_json, ctx, int(reader.id), [echo])  # type: ignore
    ctx.echo_of.clear()  # emptied: the process no longer knows `echo` echoes `own`
    ctx.items.clear()  # ...nor holds its item
    ctx.post_parts.drop(own)  # ...nor holds the echoed post's text; the echo's own is held
    assert ctx.post_parts.get(echo) is not None
    again = client.portal.call(hydrate_json, ctx, int(reader.id), [echo])  # type: ignore
    docs = client.portal.call(posts.hydrate, ctx, int(reader.id), [echo])  # type: ignore
    assert [orjson.loads(x) for x in again] == [orjson.loads(x) for x in first] == docs
    assert docs[0]["echo_of"]["body"] == "kept #x"


def _page_rows(ctx: Any, monkeypatch: Any) -> list[int]:
    """Record how many rows each batch reads whole (postjson._make)."""
    from freehold.app.services import postjson

    seen: list[int] = []
    real = postjson._make

    async def spy(c: Any, con: Any, pairs: Any) -> Any:
        got = await real(c, con, pairs)
        seen.append(len(got))
        return got

    monkeypatch.setattr(postjson, "_make", spy)
    return seen


def test_kept_items_are_made_again_when_their_rows_change(
        client: TestClient, workers: Any, rds: Any, monkeypatch: Any) -> None:
    """Items kept per process (postjson, Ctx.items) are read whole again only when a row they were
    made from changed: an upvote by someone else, the author's new display name, the echoed
    post hidden; each page equals the documents `posts.hydrate` builds, and unchanged rows are
    not read whole."""
    from freehold.app.services import postjson, posts
    from freehold.app.services.postjson import hydrate_json

    reader, author, other = (new_user(client, "ic") for _ in range(3))
    pids = [client.post("/api/v1/posts", headers=author.h, json={"body": f"k{i}"}).json()["id"]
            for i in range(3)]
    echo = client.post(f"/api/v1/posts/{pids[0]}/echo", headers=author.h,
                       json={"body": "see this"}).json()["id"]
    ids = [int(echo), *(int(p) for p in reversed(pids))]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    rows = _page_rows(ctx, monkeypatch)

    def check(whole: int) -> None:
        rows.clear()
        counted = [c._value.get() for c in (postjson._KEPT, postjson._MADE)]
        fast = client.portal.call(hydrate_json, ctx, int(reader.id), ids)  # type: ignore
        docs = client.portal.call(posts.hydrate, ctx, int(reader.id), ids)  # type: ignore
        assert [orjson.loads(x) for x in fast] == docs
        assert sum(rows) == whole  # rows read whole
        kept, made = (c._value.get() - n for c, n in zip(
            (postjson._KEPT, postjson._MADE), counted, strict=True))
        assert (kept, made) == (len(docs) - whole, whole)  # freehold_feed_items_total

    ctx.items.clear()
    check(whole=4)  # nothing kept yet
    check(whole=0)  # all kept, none changed
    assert client.post(f"/api/v1/posts/{pids[1]}/upvote", headers=other.h).status_code == 200
    check(whole=1)  # the upvoted post's counter
    assert client.post(f"/api/v1/posts/{pids[1]}/upvote", headers=reader.h).status_code == 200
    check(whole=1)  # ...and `upvoted`
    r = client.patch("/api/v1/accounts/me", headers=author.h, json={"display_name": "New Name"})
    assert r.status_code == 200, r.text
    check(whole=4)  # every item shows the author
    client.portal.call(ctx.db.execute,  # type: ignore[union-attr]
                       "UPDATE posts SET hidden = true WHERE id = $1", int(pids[0]))
    check(whole=1)  # the echo of it: shown with echo_of null now (the hidden post itself is
    # left out of the reader's page, its row not sent)
    page = client.portal.call(hydrate_json, ctx, int(reader.id), ids)  # type: ignore
    assert orjson.loads(page[0])["echo_of"] is None and len(page) == 3
    # the memory is emptied once it is ITEMS_MAX_AGE_S old (row versions come round again)
    import time

    from freehold.app.context import ITEMS_MAX_AGE_S

    ctx.items.put("1.2.3-", b"{}")
    ctx.items.since = time.monotonic() - ITEMS_MAX_AGE_S - 1
    check(whole=3)
    assert ctx.items.get("1.2.3-") is None and time.monotonic() - ctx.items.since < 60


def test_one_viewer_twice_in_a_batch(client: TestClient) -> None:
    """Two requests of one viewer in one batch, nothing held: one query of keys, one of the
    rows (each pair read once), both pages whole."""
    import asyncio

    from freehold.app.services import posts
    from freehold.app.services.postjson import _pages_batcher, hydrate_json

    reader, author = new_user(client, "iv"), new_user(client, "iv")
    ids = [int(client.post("/api/v1/posts", headers=author.h, json={"body": f"v{i}"}).json()[
        "id"]) for i in range(3)]
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    batcher = _pages_batcher(ctx)

    async def both() -> tuple[list[list[bytes]], int]:
        ctx.items.clear()
        before = batcher.batches
        got = await asyncio.gather(*(hydrate_json(ctx, int(reader.id), ids) for _ in "ab"))
        return list(got), batcher.batches - before

    (a, b), batches = client.portal.call(both)  # type: ignore[union-attr]
    assert batches == 1
    docs = client.portal.call(posts.hydrate, ctx, int(reader.id), ids)  # type: ignore
    assert [orjson.loads(x) for x in a] == docs == [orjson.loads(x) for x in b]
    assert len(ctx.items) == 6  # three items, each in its two `upvoted` variants


def test_upvoted_is_looked_up_by_reader_and_post(client: TestClient) -> None:
    """Whether the reader upvoted a post is looked up on upvotes' primary key (reader, post) in
    every query that builds documents, never by reading all the post's upvotes and filtering
    them by reader (what the LEFT JOIN was planned as: thousands of rows for a popular post)."""
    from freehold.app.services import postjson, posts

    author, reader = new_user(client, "uv"), new_user(client, "uv")
    pid = int(client.post("/api/v1/posts", headers=author.h, json={"body": "liked"}).json()["id"])
    for _ in range(5):
        fan = new_user(client, "uv")
        assert client.post(f"/api/v1/posts/{pid}/upvote", headers=fan.h).status_code == 200
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    me = int(reader.id)

    async def plans() -> list[Any]:
        out = []
        async with ctx.ro.acquire() as con:
            await con.execute("ANALYZE upvotes")
            # a test database's upvotes fit in a page, read whole: which index the query can
            # take is the question. SET LOCAL: the pool's connection keeps its own settings
            async with con.transaction():
                await con.execute("SET LOCAL plan_cache_mode = force_generic_plan;"
                                  " SET LOCAL enable_seqscan = off")
                for sql, args in ((postjson.KEYS_SQL, ([me], [0], [1], [pid])),
                                  (postjson.ROWS_SQL, ([me], [pid], [pid])),
                                  (posts.HYDRATE_SQL, ([pid], me))):
                    stmt = await con.prepare("EXPLAIN (FORMAT JSON) " + sql)
                    out.append(orjson.loads(await stmt.fetchval(*args)))
        return out

    def scans(node: Any) -> list[Any]:
        found = [node] if node.get("Relation Name") == "upvotes" else []
        for child in node.get("Plans", []):
            found += scans(child)
        return found

    for plan in client.portal.call(plans):  # type: ignore[arg-type]
        got = scans(plan[0]["Plan"])
        assert got, plan
        for scan in got:  # never by post then filtered by reader: by (reader, post), or (a tiny
            # table) read once into a hash
            assert scan.get("Index Name") == "upvotes_pkey", scan
            assert "account_id = " in scan.get("Index Cond", "account_id = "), scan


def test_the_page_maximum_follows_the_setting(client: TestClient) -> None:
    """FREEHOLD_FEED_PAGE_MAX=200: a page of 150 is taken by the fast path (home feed, hinted
    session), the framework's routes (lists, tag feeds) and the services alike; 201 is a 422
    naming `limit`. The default app (100) refuses 101 everywhere."""
    from freehold.app.main import create_app

    settings = client.app.state.settings  # type: ignore[attr-defined]
    u = new_user(client, "pm")
    routes = ("/api/v1/timelines/home", f"/api/v1/accounts/{u.id}/followers",
              f"/api/v1/accounts/{u.id}/posts", "/api/v1/tags/pm/posts")
    with TestClient(create_app(settings.replace(feed_page_max=200))) as big:
        for path in routes:
            for _ in range(2):  # the second home-feed read takes the hinted fast path
                assert big.get(path, params={"limit": 150}, headers=u.h).status_code == 200, path
            r = big.get(path, params={"limit": 201}, headers=u.h)
            assert r.status_code == 422 and "limit" in r.text, (path, r.text)
    for path in routes:
        r = client.get(path, params={"limit": 101}, headers=u.h)
        assert r.status_code == 422 and "limit" in r.text, (path, r.text)


def test_api_pages_match_the_documents(client: TestClient) -> None:
    """The API's profile, tag and latest pages (rendered by app.services.postjson) are the
    documents and cursors the web UI's dict pages give (posts.hydrate)."""
    reader, author = new_user(client, "pj"), new_user(client, "pj")
    tag = f"pj{author.id[-6:]}"
    made = [client.post("/api/v1/posts", headers=author.h,
                        json={"body": f"post {i} #{tag}"}).json() for i in range(3)]
    r = client.post(f"/api/v1/posts/{made[0]['id']}/echo", headers=author.h, json={"body": ""})
    assert r.status_code == 201, r.text
    assert client.post(f"/api/v1/posts/{made[1]['id']}/upvote",
                       headers=reader.h).status_code == 200
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    me, aid = int(reader.id), int(author.id)
    for path, docs in (
            (f"/api/v1/accounts/{author.id}/posts", lambda c: feed.account_posts(
                ctx, me, aid, limit=2, cursor=c)),
            (f"/api/v1/tags/{tag}/posts", lambda c: feed.tag_posts(ctx, me, tag, limit=2,
                                                                   cursor=c)),
            ("/api/v1/discover/latest", lambda c: feed.latest(ctx, me, limit=2, cursor=c))):
        cursor, pages = None, 0
        for _ in range(3 if "latest" in path else 5):
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            got = client.get(path, params=params, headers=reader.h)
            assert got.status_code == 200, (path, got.text)
            items, nxt = client.portal.call(docs, cursor)  # type: ignore[union-attr]
            assert got.json() == {"items": items, "next_cursor": nxt}, path
            pages += 1
            cursor = nxt
            if not cursor:
                break
        assert pages >= 2, path
    page = client.get(f"/api/v1/accounts/{author.id}/posts", headers=reader.h).json()["items"]
    assert len(page) == 4 and page[0]["echo_of"]["id"] == made[0]["id"]
    assert next(p for p in page if p["id"] == made[1]["id"])["upvoted"] is True
