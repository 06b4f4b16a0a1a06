"""The Mastodon API's rate limit (429, Mastodon's error body, X-RateLimit-* and Retry-After,
on the home timeline's short path and on a routed request alike), and the home timeline's
short path answering what the route answers (bytes, Link header, kept items refreshed when
a post changes)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from starlette.testclient import TestClient

from freehold.app.main import create_app
from freehold.app.settings import Settings
from tests.integration.app.conftest import new_user, streams_idle, wait_for
from tests.integration.app.mastodon.conftest import authorize
from tests.integration.app.mastodon.entities import check_list

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_rate_limit_answers_429_as_mastodon(client: TestClient, app_settings: Settings) -> None:
    m = authorize(client, new_user(client, "rl"))
    limited = app_settings.replace(masto_rate_limit=4, masto_rate_window=300)
    with TestClient(create_app(limited)) as lc:
        seen = []
        for _ in range(4):
            r = lc.get("/api/v1/timelines/home", headers=m.h)  # the short path
            assert r.status_code == 200, r.text
            seen.append(int(r.headers["x-ratelimit-remaining"]))
            assert r.headers["x-ratelimit-limit"] == "4"
        assert seen == [3, 2, 1, 0]
        for path in ("/api/v1/timelines/home", "/api/v1/timelines/home?since_id=1",
                     "/api/v1/accounts/verify_credentials"):
            r = lc.get(path, headers=m.h)
            assert r.status_code == 429, (path, r.text)
            assert r.json() == {"error": "Too many requests"}
            assert r.headers["content-type"].startswith("application/json")
            assert r.headers["x-ratelimit-limit"] == "4"
            assert r.headers["x-ratelimit-remaining"] == "0"
            reset = r.headers["x-ratelimit-reset"]
            assert ISO_Z.match(reset), reset
            left = (datetime.fromisoformat(reset.replace("Z", "+00:00"))
                    - datetime.now(UTC)).total_seconds()
            assert -1 <= left <= 301
            assert 1 <= int(r.headers["retry-after"]) <= 302
            assert abs(int(r.headers["retry-after"]) - left) <= 2
            assert r.headers["access-control-allow-origin"] == "*"
            assert "X-RateLimit-Remaining" in r.headers["access-control-expose-headers"]
        # another token has its own count; the native API is not limited by it
        other = authorize(client, new_user(client, "rl"))
        assert lc.get("/api/v1/timelines/home", headers=other.h).status_code == 200
        native = new_user(lc, "rl")
        assert lc.get("/api/v1/timelines/home", headers=native.h).status_code == 200


def test_home_short_path_answers_as_the_route(client: TestClient, workers: object,
                                              rds: object) -> None:
    reader, author = new_user(client, "hf"), new_user(client, "hf")
    m = authorize(client, reader)
    assert client.post(f"/api/v1/accounts/{author.id}/follow", headers=m.h).status_code == 200
    writer = authorize(client, author)
    posted = [client.post("/api/v1/statuses", headers=writer.h,
                          json={"status": f"post {n} #short @{reader.username}"}).json()["id"]
              for n in range(3)]
    streams_idle(rds)
    wait_for(lambda: [s["id"] for s in client.get(
        "/api/v1/timelines/home", headers=m.h).json()][:3] == posted[::-1], timeout=20)
    for q in ("limit=2", "limit=3", f"limit=2&max_id={posted[-1]}"):
        fast = client.get(f"/api/v1/timelines/home?{q}", headers=m.h)
        routed = client.get(f"/api/v1/timelines/home?{q}&since_id=1", headers=m.h)
        assert fast.status_code == routed.status_code == 200
        assert fast.content == routed.content, q
        assert fast.headers["link"] == routed.headers["link"]
        check_list(fast.json(), "Status")
    # a favourite makes a new row version: the kept item is not served again
    first = client.get("/api/v1/timelines/home?limit=1", headers=m.h).json()[0]
    assert first["favourited"] is False and first["favourites_count"] == 0
    assert client.post(f"/api/v1/statuses/{first['id']}/favourite",
                       headers=m.h).status_code == 200
    again = client.get("/api/v1/timelines/home?limit=1", headers=m.h).json()[0]
    assert again["id"] == first["id"]
    assert again["favourited"] is True and again["favourites_count"] == 1
    assert client.app.mastodon.statuses.kept > 0  # type: ignore[attr-defined]
