"""A fan-out worker killed mid-batch (SIGKILL, by pid): another worker claims its pending
entries with XAUTOCLAIM and no follower misses the post."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from redis.exceptions import ResponseError
from starlette.testclient import TestClient

from freehold.app.redis_client import STREAM_POSTS, feed_key
from tests.integration.app.conftest import (
    home_ids,
    new_user,
    start_worker,
    stop_process,
    wait_for,
)


def test_killed_worker_entries_are_claimed(client: TestClient, app_settings: Any, rds: Any,
                                           workers: dict[str, Any], tmp_path: Path) -> None:
    # the shared `fanout` group is the real path: stop the session's fan-out worker so that
    # the slow worker below is the only consumer until it dies (restarted at the end)
    stop_process(workers["fanout"])
    author = new_user(client, "crash")
    fans = [new_user(client, "cf") for _ in range(5)]
    for f in fans:
        assert client.post(f"/api/v1/accounts/{author.id}/follow", headers=f.h).status_code == 200
        home_ids(client, f)  # cache each feed
    slow = start_worker(app_settings, "fanout", tmp_path / "slow.log",
                        FREEHOLD_FANOUT_CHUNK="1", FREEHOLD_FANOUT_CHUNK_PAUSE_MS="400",
                        FREEHOLD_WORKER_CLAIM_IDLE_MS="60000")
    try:
        r = client.post("/api/v1/posts", headers=author.h, json={"body": "do not miss me"})
        pid = r.json()["id"]

        def mid_batch() -> bool:
            try:
                pend = rds.xpending(STREAM_POSTS, "fanout")
            except ResponseError:  # the group is not created yet
                return False
            got = sum(1 for f in fans if pid in rds.lrange(feed_key(int(f.id)), 0, -1))
            return bool(pend["pending"]) and 1 <= got < len(fans)

        wait_for(mid_batch, timeout=20, every=0.02)
        slow.send_signal(signal.SIGKILL)
        slow.wait(timeout=10)
        consumers = {c["name"]: c["pending"] for c in rds.xinfo_consumers(STREAM_POSTS, "fanout")}
        assert any(n == f"{_host()}-{slow.pid}" and p >= 1 for n, p in consumers.items())
        missing = [f for f in fans if pid not in rds.lrange(feed_key(int(f.id)), 0, -1)]
        assert missing, "the worker finished before it was killed: nothing to claim"
    finally:
        stop_process(slow)
    rescuer = start_worker(app_settings, "fanout", tmp_path / "rescuer.log",
                           FREEHOLD_WORKER_CLAIM_IDLE_MS="500")
    try:
        wait_for(lambda: all(pid in rds.lrange(feed_key(int(f.id)), 0, -1) for f in fans),
                 timeout=30)
        wait_for(lambda: rds.xpending(STREAM_POSTS, "fanout")["pending"] == 0, timeout=15)
    finally:
        stop_process(rescuer)
        workers["fanout"] = start_worker(app_settings, "fanout", tmp_path / "fanout.log")
    assert "claimed" in (tmp_path / "rescuer.log").read_text()
    for f in fans:  # redone entries may push twice: the feed still shows the post once
        assert home_ids(client, f).count(pid) == 1


def _host() -> str:
    import socket

    return socket.gethostname()
