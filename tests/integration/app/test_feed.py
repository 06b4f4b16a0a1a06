"""Home feed: fan-out by real worker processes, unfollow, big accounts merged at read time,
rebuild from PostgreSQL, pagination, blocks and mutes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from freehold.app.redis_client import feed_key
from freehold.app.services import feed
from tests.integration.app.conftest import User, home_ids, new_user, streams_idle, wait_for


def post(client: TestClient, u: User, body: str) -> str:
    r = client.post("/api/v1/posts", headers=u.h, json={"body": body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def follow(client: TestClient, a: User, b: User) -> None:
    assert client.post(f"/api/v1/accounts/{b.id}/follow", headers=a.h).status_code == 200


def pull(client: TestClient, u: User, limit: int = 100) -> list[str]:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    ids = client.portal.call(feed.pull_ids, ctx, int(u.id), limit)  # type: ignore[union-attr]
    return [str(i) for i in ids]


def test_fanout_reaches_follower_and_unfollow_stops_it(client: TestClient, workers: Any,
                                                       rds: Any) -> None:
    author, fan = new_user(client, "fa"), new_user(client, "fa")
    old = post(client, author, "before the follow")
    follow(client, fan, author)
    assert home_ids(client, fan) == [old]  # missing feed rebuilt from PostgreSQL
    new = post(client, author, "fresh")
    # the worker pushed it onto the cached list (not a rebuild: the list already existed)
    wait_for(lambda: new in rds.lrange(feed_key(int(fan.id)), 0, -1))
    assert home_ids(client, fan) == [new, old]
    assert client.delete(f"/api/v1/accounts/{author.id}/follow", headers=fan.h).json() == {
        "following": False}
    assert home_ids(client, fan) == []
    after = post(client, author, "after the unfollow")
    streams_idle(rds)
    assert after not in rds.lrange(feed_key(int(fan.id)), 0, -1)
    assert home_ids(client, fan) == []


def test_big_account_merge_and_rebuild_match_fanout(client: TestClient, workers: Any,
                                                    rds: Any) -> None:
    """Same feed from: fan-out (+ read-time merge of a big account), a rebuild from
    PostgreSQL, and the pull-on-read SQL baseline; also across the big threshold."""
    reader = new_user(client, "rd")
    small, big = new_user(client, "sm"), new_user(client, "bg")
    for a in (small, big):
        follow(client, reader, a)
    home_ids(client, reader)  # cache the feed so that fan-out pushes into it
    expected = []
    for i in range(3):  # big is still small: fanned out
        expected += [post(client, small, f"s{i}"), post(client, big, f"b{i}")]
    fans = [new_user(client, "fn") for _ in range(client.app.state.settings  # type: ignore
                                                  .big_account_followers)]
    for f in fans:
        follow(client, f, big)
    assert client.get(f"/api/v1/accounts/{big.id}", headers=reader.h).json()[
        "followers_count"] >= 6
    for i in range(3):  # now big: merged at read time
        expected += [post(client, small, f"s{i + 3}"), post(client, big, f"b{i + 3}")]
    own = post(client, reader, "mine too")
    expected.append(own)
    streams_idle(rds)
    cached = rds.lrange(feed_key(int(reader.id)), 0, -1)
    assert expected[-2] not in cached  # the big account's latest was not pushed...
    got = home_ids(client, reader)
    want = sorted(expected, key=int, reverse=True)
    assert got == want  # ...but merged in, strictly newest first
    assert pull(client, reader) == want
    rds.delete(feed_key(int(reader.id)))
    assert home_ids(client, reader) == want  # rebuilt from PostgreSQL
    for f in fans:  # big becomes small again: its followers' feeds are rebuilt
        client.delete(f"/api/v1/accounts/{big.id}/follow", headers=f.h)
    assert home_ids(client, reader) == want
    late = post(client, big, "small again")
    wait_for(lambda: late in rds.lrange(feed_key(int(reader.id)), 0, -1))
    assert home_ids(client, reader) == [late, *want]


def paged_ids(client: TestClient, u: User, pages: int,
              before_page: Callable[[list[str]], None] | None = None) -> list[str]:
    """The home feed's post ids, 5 a page by its cursor, at most `pages` pages;
    `before_page(ids so far)` runs before each page is read."""
    seen: list[str] = []
    cursor = None
    for _ in range(pages):
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        if before_page:
            before_page(seen)
        page = client.get("/api/v1/timelines/home", params=params, headers=u.h).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    return seen


def test_cursor_pagination_strictly_newest_first(client: TestClient, workers: Any,
                                                 rds: Any) -> None:
    reader, a, b = new_user(client, "pg"), new_user(client, "pg"), new_user(client, "pg")
    follow(client, reader, a)
    follow(client, reader, b)
    home_ids(client, reader)
    made = [post(client, a if i % 2 else b, f"p{i}") for i in range(23)]
    streams_idle(rds)
    def interleave(seen: list[str]) -> None:
        if len(seen) == 10:  # new posts arrive while paging: the next page is unaffected
            post(client, a, "interleaved")
            streams_idle(rds)

    seen = paged_ids(client, reader, pages=10, before_page=interleave)
    assert seen == sorted(made, key=int, reverse=True)
    bad = client.get("/api/v1/timelines/home", params={"cursor": "nope"}, headers=reader.h)
    assert bad.status_code == 422


def test_pagination_finds_a_post_pushed_late_out_of_order(client: TestClient, workers: Any,
                                                          rds: Any) -> None:
    """A fan-out redone after a worker was killed mid-batch (the worker-kill drill), or two
    workers pushing concurrently, puts an older post id at the head of a feed, above newer
    ones. Every page must still be newest first and no post skipped (the drill's followers
    each missed the one post whose fan-out was redone)."""
    reader, a = new_user(client, "pl"), new_user(client, "pl")
    follow(client, reader, a)
    home_ids(client, reader)
    made = [post(client, a, f"late{i}") for i in range(14)]
    streams_idle(rds)
    key = feed_key(int(reader.id))
    wait_for(lambda: set(made) <= set(rds.lrange(key, 0, -1)), 20)  # every post fanned out
    for old in (made[2], made[6]):  # never pushed in order, then pushed after the newer ones
        rds.lrem(key, 0, old)
        rds.lpushx(key, old)
    assert paged_ids(client, reader, pages=20) == sorted(made, key=int, reverse=True)


def test_block_and_mute(client: TestClient, workers: Any, rds: Any) -> None:
    reader, loud, rude = new_user(client, "bk"), new_user(client, "bk"), new_user(client, "bk")
    for a in (loud, rude):
        follow(client, reader, a)
    p_loud, p_rude = post(client, loud, "loud"), post(client, rude, "rude")
    assert set(home_ids(client, reader)) == {p_loud, p_rude}
    client.post(f"/api/v1/accounts/{loud.id}/mute", headers=reader.h)
    assert home_ids(client, reader) == [p_rude]
    client.delete(f"/api/v1/accounts/{loud.id}/mute", headers=reader.h)
    # the rude account blocks the reader: the reader can no longer read its posts
    assert client.post(f"/api/v1/accounts/{reader.id}/block", headers=rude.h).status_code == 200
    assert home_ids(client, reader) == [p_loud]
    r = client.get(f"/api/v1/posts/{p_rude}", headers=reader.h)
    assert r.status_code == 403
    r = client.get(f"/api/v1/accounts/{rude.id}/posts", headers=reader.h)
    assert r.status_code == 403
    assert client.post(f"/api/v1/accounts/{rude.id}/follow", headers=reader.h).status_code == 403
    r = client.post("/api/v1/posts", headers=reader.h, json={"body": "hi",
                                                             "reply_to_id": p_rude})
    assert r.status_code == 403
    rel = client.get(f"/api/v1/accounts/{rude.id}", headers=reader.h).json()["relationship"]
    assert rel["blocked_by"] is True and rel["following"] is False
