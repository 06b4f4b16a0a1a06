"""The home feed's fast path: the session checked inside the feed's Redis round trip, and big
accounts' lists read deeper than their first ids only when needed — both must give what the
slow paths give."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from app.services import feed
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
