"""The demo network (app.demo) on the integration PostgreSQL, Redis and SeaweedFS: the demo
admin's first screen, read through the app, is a living network; a second build adds nothing;
an account the builder did not create is never touched (one the old seed made, with the public
demo password, is adopted)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from freehold.app.db import migrate
from freehold.app.demo.builder import build_demo
from freehold.app.demo.content import ADMIN, PASSWORD
from freehold.app.devstack import Postgres
from freehold.app.main import create_app
from freehold.app.services.media import MediaStore
from freehold.app.settings import Settings

DB = "freehold_demo"
TABLES = ("accounts", "follows", "posts", "upvotes", "media", "reports", "cases", "mentions",
          "audit_log")


@pytest.fixture(scope="module")
def demo_settings(pg_server: Postgres, app_settings: Settings) -> Iterator[Settings]:
    """A database, a Redis database and a bucket of its own, empty."""
    pg_server.psql(f"CREATE DATABASE {DB}")
    dsn = pg_server.dsn_for(DB)
    migrate(dsn)
    s = app_settings.replace(database_url=dsn, s3_bucket="freehold-demo-test",
                             redis_url=app_settings.redis_url.rsplit("/", 1)[0] + "/7")
    r = redis.Redis.from_url(s.redis_url)
    r.flushdb()
    r.close()
    MediaStore.from_settings(s).ensure_bucket_sync()
    yield s


def counts(pg: Postgres) -> dict[str, int]:
    return {t: int(pg.psql(f"SELECT count(*) FROM {t}", database=DB)) for t in TABLES}


def test_demo_admin_sees_a_living_network(pg_server: Postgres, demo_settings: Settings) -> None:
    s = demo_settings
    with TestClient(create_app(s)) as client:
        # someone holds one of the demo's usernames already: the builder must leave it alone
        r = client.post("/api/v1/accounts", json={"username": "carol", "password": "her own pw 1",
                                                  "email": "carol.real@example.org"})
        assert r.status_code == 201, r.text
        carol_before = pg_server.psql(
            "SELECT id, password_hash, email, bio, avatar_key, is_admin, is_juror,"
            " following_count, followers_count, posts_count FROM accounts"
            " WHERE username = 'carol'", database=DB)

        # and dave as app.dev's old seed made him: the demo e-mail and the public demo password
        r = client.post("/api/v1/accounts", json={"username": "dave", "password": PASSWORD,
                                                  "email": "dave@example.org"})
        assert r.status_code == 201, r.text

        made = asyncio.run(build_demo(s))
        assert made["skipped"] == ["carol"]
        assert made["accounts"] == 8 and made["adopted"] == 1, made
        assert made["posts"] >= 15 and made["reports"] == 2, made
        assert made["images"] >= 9 + 4, made  # avatars and post images

        login = client.post("/api/v1/auth/login", json={"login": ADMIN, "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert login.json()["account"]["admin"] is True
        h = {"Authorization": f"Bearer {login.json()['token']}"}
        feed = client.get("/api/v1/timelines/home", params={"limit": 50}, headers=h)
        assert feed.status_code == 200, feed.text
        items = feed.json()["items"]
        assert len(items) >= 12, items
        with_media = [p for p in items if p["media"]]
        assert len(with_media) >= 3
        img = client.get(with_media[0]["media"][0]["url"])  # from the media store, via the app
        assert img.status_code == 200 and img.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert img.headers["content-type"] == "image/png"
        assert any(p["reply_to_id"] for p in items)
        assert any(p["echo_of"] and not p["body"] for p in items)  # a plain echo
        assert any(p["echo_of"] and p["body"] for p in items)  # an echo with a comment
        assert any(p["tags"] for p in items) and any(p["mentions"] for p in items)
        assert any(p["upvotes_count"] >= 3 for p in items)
        assert any(p["upvoted"] for p in items)  # the admin's own upvotes
        authors = {p["author"]["username"] for p in items}
        assert len(authors) >= 6 and not authors & {"carol", "quick_deals"}
        assert "dave" in authors
        me = client.get("/api/v1/accounts/me", headers=h).json()
        assert me["following_count"] == 7 and me["followers_count"] >= 5  # carol is not his

        queue = client.get("/api/v1/moderation/queue", headers=h)
        assert queue.status_code == 200, queue.text
        cases = queue.json()["items"]
        spam = [c for c in cases if c["username"] == "quick_deals"]
        assert len(spam) == 1 and spam[0]["reports_count"] == 2 and spam[0]["post"]

        # a second build adds nothing, and carol is as she was
        before = counts(pg_server)
        again = asyncio.run(build_demo(s))
        assert again == {"accounts": 0, "adopted": 0, "follows": 0, "posts": 0, "images": 0,
                         "reports": 0, "skipped": ["carol"]}
        assert counts(pg_server) == before
        assert pg_server.psql(
            "SELECT id, password_hash, email, bio, avatar_key, is_admin, is_juror,"
            " following_count, followers_count, posts_count FROM accounts"
            " WHERE username = 'carol'", database=DB) == carol_before
        assert pg_server.psql(
            "SELECT count(*) FROM follows f JOIN accounts a ON a.id IN (f.follower_id,"
            " f.followee_id) WHERE a.username = 'carol'", database=DB) == "0"
        assert pg_server.psql(
            "SELECT count(*) FROM mentions m JOIN accounts a ON a.id = m.account_id"
            " WHERE a.username = 'carol'", database=DB) == "0"
        r = client.post("/api/v1/auth/login", json={"login": "carol", "password": "her own pw 1"})
        assert r.status_code == 200, r.text
