"""Reads against a real lagging replica: a hot standby of the test PostgreSQL (pg_basebackup,
streaming) whose replay the test pauses, so the replica stands still while the primary moves.

What must hold (app.readwrite): an account that has just written reads its writes; a post
reached by id is found even when the replica has not got it yet; a home feed rebuilt while the
replica lags is built from the primary (it is cached for days); and lag-tolerant reads of an
account that did not write really go to the replica.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from freehold.app.devstack import Postgres
from freehold.app.main import create_app
from freehold.app.redis_client import feed_key
from freehold.app.settings import Settings
from tests.integration.app.conftest import User, new_user, wait_for


@pytest.fixture(scope="module")
def standby(pg_server: Postgres, app_settings: Settings,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    sb = pg_server.start_standby(Path(tmp_path_factory.mktemp("standby")))
    try:
        assert sb.psql("SELECT pg_is_in_recovery()", "freehold_app") == "t"
        yield sb
    finally:
        sb.stop()


def replica_has_post(sb: Postgres, post_id: str) -> bool:
    return sb.psql(f"SELECT 1 FROM posts WHERE id = {int(post_id)}", "freehold_app") != ""


def account_post_ids(c: TestClient, viewer: User, author: User) -> list[str]:
    r = c.get(f"/api/v1/accounts/{author.id}/posts", headers=viewer.h)
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["items"]]


def test_reads_with_a_paused_replica(app_settings: Settings, standby: Postgres) -> None:
    url = app_settings.redis_url.rsplit("/", 1)[0] + "/6"
    with redis.Redis.from_url(url) as r:
        r.flushdb()
    s = app_settings.replace(database_read_url=standby.dsn_for("freehold_app"), redis_url=url,
                             read_your_writes_ms=1500)
    with TestClient(create_app(s)) as c, redis.Redis.from_url(url) as rd:
        author, follower, stranger = (new_user(c, "rp") for _ in range(3))
        old = c.post("/api/v1/posts", headers=author.h, json={"body": "before the pause"})
        assert old.status_code == 201
        wait_for(lambda: replica_has_post(standby, old.json()["id"]), timeout=30)
        standby.psql("SELECT pg_wal_replay_pause()", "freehold_app")
        try:
            post = c.post("/api/v1/posts", headers=author.h, json={"body": "during the pause"})
            assert post.status_code == 201
            pid = post.json()["id"]
            assert not replica_has_post(standby, pid)  # the replica really stands still
            # the author just wrote: reads its own writes (from the primary)
            assert c.get(f"/api/v1/posts/{pid}", headers=author.h).status_code == 200
            reply = c.post("/api/v1/posts", headers=author.h,
                           json={"body": "a reply", "reply_to_id": pid})
            assert reply.status_code == 201
            th = c.get(f"/api/v1/posts/{pid}/thread", headers=author.h).json()
            assert [x["id"] for x in th["replies"]] == [reply.json()["id"]]
            assert account_post_ids(c, author, author)[0] == reply.json()["id"]
            # someone who did not write: a post by id is found all the same (a miss on the
            # replica is read again on the primary) ...
            got = c.get(f"/api/v1/posts/{pid}", headers=stranger.h)
            assert got.status_code == 200 and got.json()["body"] == "during the pause"
            # ... while lists that tolerate lag come from the replica, as they should
            assert account_post_ids(c, stranger, author) == [old.json()["id"]]
            # a follow rebuilds the follower's feed: from the primary, not the stale replica
            assert c.post(f"/api/v1/accounts/{author.id}/follow",
                          headers=follower.h).status_code == 200
            c.get("/api/v1/timelines/home", headers=follower.h)
            cached = [x.decode() for x in rd.lrange(feed_key(int(follower.id)), 0, -1)]
            assert pid in cached and reply.json()["id"] in cached, cached
            # once the moment has passed, the author reads from the replica again
            time.sleep(1.6)
            assert account_post_ids(c, author, author) == [old.json()["id"]]
        finally:
            standby.psql("SELECT pg_wal_replay_resume()", "freehold_app")
        wait_for(lambda: replica_has_post(standby, reply.json()["id"]), timeout=30)
        assert account_post_ids(c, stranger, author)[:2] == [reply.json()["id"], pid]
        home = c.get("/api/v1/timelines/home", headers=follower.h).json()["items"]
        assert [p["id"] for p in home][:3] == [reply.json()["id"], pid, old.json()["id"]]
