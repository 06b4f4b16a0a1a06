"""Notifications, search, discover, follower lists, rate limits, operations endpoints."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from freehold.app.devstack import free_port
from freehold.app.main import create_app
from freehold.app.redis_client import FANOUT_LAG
from freehold.app.services import notifications, trends
from tests.integration.app.conftest import (
    home_ids,
    make_admin,
    new_user,
    streams_idle,
    wait_for,
)


def test_notifications_and_unread_count(client: TestClient, workers: Any) -> None:
    a, b = new_user(client, "nt"), new_user(client, "nt")
    client.post(f"/api/v1/accounts/{a.id}/follow", headers=b.h)
    p = client.post("/api/v1/posts", headers=a.h, json={"body": "notice me"}).json()
    client.post("/api/v1/posts", headers=b.h, json={"body": "replying", "reply_to_id": p["id"]})
    client.post("/api/v1/posts", headers=b.h, json={"body": f"hey @{a.username}"})
    client.post(f"/api/v1/posts/{p['id']}/echo", headers=b.h, json={})
    client.post(f"/api/v1/posts/{p['id']}/upvote", headers=b.h)
    client.post(f"/api/v1/posts/{p['id']}/upvote", headers=a.h)  # own upvote: no notification

    def count() -> int:
        n = client.get("/api/v1/notifications/unread_count", headers=a.h).json()["unread"]
        return n if n == 5 else 0

    assert wait_for(count) == 5
    items = client.get("/api/v1/notifications", headers=a.h).json()["items"]
    assert sorted(n["kind"] for n in items) == ["echo", "follow", "mention", "reply", "upvote"]
    assert all(n["actor"]["id"] == b.id for n in items)
    assert [n["id"] for n in items] == sorted((n["id"] for n in items), key=int, reverse=True)
    # the API's JSON (posts rendered by app.services.postjson) is the web UI's documents
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    for limit in (2, 40):
        docs, nxt = client.portal.call(  # type: ignore[union-attr]
            lambda n=limit: notifications.listing(ctx, int(a.id), limit=n))
        got = client.get("/api/v1/notifications", params={"limit": limit}, headers=a.h).json()
        assert got == {"items": docs, "next_cursor": nxt}
    assert sum(n["post"] is not None for n in items) == 4  # all but the follow
    assert client.post("/api/v1/notifications/read", headers=a.h, json={}).json()["marked"] == 5
    assert client.get("/api/v1/notifications/unread_count", headers=a.h).json()["unread"] == 0
    assert client.get("/api/v1/notifications/unread_count", headers=b.h).json()["unread"] == 0


def test_search_and_follow_lists(client: TestClient) -> None:
    a = new_user(client, "srch", display_name="Zanzibar Quill")
    fans = [new_user(client, "srf") for _ in range(3)]
    for f in fans:
        client.post(f"/api/v1/accounts/{a.id}/follow", headers=f.h)
    by_name = client.get("/api/v1/search/accounts", params={"q": a.username[:8]},
                         headers=fans[0].h).json()["items"]
    assert a.id in [x["id"] for x in by_name]
    by_display = client.get("/api/v1/search/accounts", params={"q": "zanzibar q"},
                            headers=fans[0].h).json()["items"]
    assert [x["id"] for x in by_display] == [a.id]
    assert client.get("/api/v1/search/accounts", params={"q": "%"},
                      headers=fans[0].h).json()["items"] == []
    got = client.get(f"/api/v1/accounts/by-username/{a.username}", headers=fans[0].h).json()
    assert got["id"] == a.id and got["relationship"]["following"] is True
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/v1/accounts/{a.id}/followers", params=params,
                          headers=a.h).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(f.id for f in fans)
    following = client.get(f"/api/v1/accounts/{fans[0].id}/following", headers=a.h).json()
    assert [x["id"] for x in following["items"]] == [a.id]


def test_discover_trending_and_latest(client: TestClient) -> None:
    users = [new_user(client, "tr") for _ in range(3)]
    posts = [client.post("/api/v1/posts", headers=u.h,
                         json={"body": f"all about #zebracrossing {i}"}).json()
             for i, u in enumerate(users)]
    client.post("/api/v1/posts", headers=users[0].h, json={"body": "#lonelytag"})
    for u in users[1:]:
        client.post(f"/api/v1/posts/{posts[0]['id']}/upvote", headers=u.h)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    client.portal.call(trends.compute, ctx)  # type: ignore[union-attr]  # the worker's job
    tags = client.get("/api/v1/discover/tags", headers=users[0].h).json()["items"]
    names = [t["tag"] for t in tags]
    # the list is the top tags of the whole (session-shared) database: a tag used once may be
    # crowded out by other tests' tags; when it is listed it ranks below the upvoted one
    assert "zebracrossing" in names, names
    assert "lonelytag" not in names or names.index("zebracrossing") < names.index("lonelytag")
    hot = client.get("/api/v1/discover/posts", headers=users[0].h).json()["items"]
    assert posts[0]["id"] in [p["id"] for p in hot]
    latest = client.get("/api/v1/discover/latest", params={"limit": 5},
                        headers=users[0].h).json()["items"]
    assert latest[0]["body"] == "#lonelytag"


def test_rate_limits_answer_429_with_retry_after(app_settings: Any) -> None:
    import redis

    url = app_settings.redis_url.rsplit("/", 1)[0] + "/4"  # own counters, fresh
    with redis.Redis.from_url(url) as r:
        r.flushdb()
    s = app_settings.replace(redis_url=url, rl_signup_per_ip=3, rl_login_per_account=2,
                             rl_write_per_account=3, rl_write_window=60)
    with TestClient(create_app(s)) as c:
        users = [new_user(c, "rl") for _ in range(3)]
        r = c.post("/api/v1/accounts", json={"username": "rl_over", "email": "rl@example.org",
                                             "password": "long enough"})
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 3601
        u = users[0]
        for i in range(3):
            assert c.post("/api/v1/posts", headers=u.h, json={"body": f"n{i}"}).status_code == 201
        r = c.post("/api/v1/posts", headers=u.h, json={"body": "one too many"})
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 61
        # limits are per account: another account can still post
        assert c.post("/api/v1/posts", headers=users[1].h, json={"body": "ok"}).status_code == 201
        for _ in range(2):
            c.post("/api/v1/auth/login", json={"login": users[2].username, "password": "bad pw!"})
        r = c.post("/api/v1/auth/login", json={"login": users[2].username,
                                               "password": users[2].password})
        assert r.status_code == 429 and "Retry-After" in r.headers


def metric_samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample in a Prometheus text exposition: name -> [(labels, value)]."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_operations_endpoints(client: TestClient, workers: Any, rds: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
    author, fan = new_user(client, "ops"), new_user(client, "ops")
    assert client.post(f"/api/v1/accounts/{author.id}/follow", headers=fan.h).status_code < 300
    client.get("/api/v1/timelines/home", headers=fan.h)

    def scrape() -> dict[str, list[tuple[dict[str, str], float]]]:
        r = client.get("/metrics")
        assert r.status_code == 200
        return metric_samples(r.text)

    def fanout_lag() -> float:
        samples = scrape()["freehold_fanout_lag_seconds_last"]
        assert len(samples) == 1
        return samples[0][1]

    counts = scrape()["freehold_http_request_duration_seconds_count"]
    home = [v for labels, v in counts if labels == {
        "method": "GET", "route": "/api/v1/timelines/home", "status": "200"}]
    assert home and home[0] >= 1
    # the fan-out lag gauge is what the fan-out worker last wrote: a sentinel first, then a
    # real post's age when it reached its follower's feed
    rds.set(FANOUT_LAG, "999999999")
    assert fanout_lag() == 999999.999
    t0 = time.monotonic()
    post = client.post("/api/v1/posts", headers=author.h, json={"body": "fan me out"}).json()
    wait_for(lambda: post["id"] in home_ids(client, fan), timeout=30)
    lag = wait_for(lambda: (v := fanout_lag()) < 999999 and (v,), timeout=30)[0]
    elapsed = time.monotonic() - t0
    assert 0 <= lag <= elapsed + 1.0, (lag, elapsed)
    # stream depth: a lag and a pending sample per stream and consumer group, live values
    for body in ("a second entry", "a third entry"):
        client.post("/api/v1/posts", headers=fan.h, json={"body": body})
    streams_idle(rds)
    groups = {("stream:posts", "fanout"), ("stream:posts", "moderation"),
              ("stream:events", "notify")}
    now = scrape()
    for name in ("freehold_stream_lag", "freehold_stream_pending"):
        got = {(labels["stream"], labels["group"]): v for labels, v in now[name]}
        assert groups <= set(got), (name, got)
        assert all(got[g] == 0 for g in groups), (name, got)  # idle: all read and acknowledged
    last_three = rds.xrevrange("stream:posts", count=3)
    assert len(last_three) == 3
    # a group one entry behind (its read count given)
    added = int(rds.xinfo_stream("stream:posts")["entries-added"])
    rds.xgroup_create("stream:posts", "ops_probe", id=last_three[1][0], entries_read=added - 1)

    def stream_lags() -> dict[str, float]:
        return {labels["group"]: v for labels, v in scrape()["freehold_stream_lag"]
                if labels["stream"] == "stream:posts"}

    try:
        assert stream_lags()["ops_probe"] == 1.0
    finally:
        rds.xgroup_destroy("stream:posts", "ops_probe")
    # a group Redis cannot tell the lag of (an entry after its position deleted: its `lag` is
    # empty) is counted by the app, not shown as 0; the deleted entry was read by all groups
    rds.xgroup_create("stream:posts", "ops_unknown", id=last_three[2][0])
    try:
        rds.xdel("stream:posts", last_three[1][0])
        unknown = [g for g in rds.xinfo_groups("stream:posts")
                   if g["name"] in ("ops_unknown", b"ops_unknown")]
        assert unknown[0]["lag"] is None
        assert stream_lags()["ops_unknown"] == 1.0
    finally:
        rds.xgroup_destroy("stream:posts", "ops_unknown")
    admin = make_admin(client)
    stats = client.get("/api/v1/admin/moderation", headers=admin.h).json()
    assert scrape()["freehold_moderation_queue_size"] == [({}, float(stats["queue_size"]))]
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/timelines/home" in spec["paths"]


def test_readyz_503_when_redis_or_postgres_unreachable(app_settings: Any) -> None:
    closed = free_port()
    no_redis = app_settings.replace(redis_url=f"redis://127.0.0.1:{closed}/0", s3_endpoint="",
                                    db_pool_min=1, db_pool_max=2)
    # PostgreSQL: a pool that opens no connection at start, pointed at the closed port
    no_pg = app_settings.replace(
        database_url=f"postgresql://freehold:x@127.0.0.1:{closed}/freehold_app",
        database_read_url="", s3_endpoint="", db_pool_min=0, db_pool_max=1)
    for settings, down, up in ((no_redis, "redis", "postgres"), (no_pg, "postgres", "redis")):
        with TestClient(create_app(settings)) as c:
            r = c.get("/readyz")
            assert r.status_code == 503, r.text
            doc = r.json()
            assert doc["status"] == "unavailable" and doc[up] == "ok"
            assert doc[down].startswith("down: "), doc
            assert c.get("/healthz").status_code == 200  # the process itself is up
