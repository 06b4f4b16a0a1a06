"""The drills' own checks against the real app (uvicorn on loopback, real PostgreSQL, Redis,
SeaweedFS and fan-out worker): the followers' check sees posts the workers never pushed, the
images' check sees an image whose bytes changed or that is gone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from freehold.app.devstack import stop_process
from freehold.app.services.media import MediaStore
from freehold.app.settings import Settings
from freehold.deploy.drills.accounts import DrillAccount, signup, write
from freehold.deploy.drills.followers import Followers, missed
from freehold.deploy.drills.media import IMAGE, UPLOAD, MediaTraffic, png, verify_images
from tests.integration.app.conftest import start_worker
from tests.integration.app.test_web_browser import serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base(app_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(app_settings, tmp_path_factory.mktemp("drill-probes")) as url:
        yield url


def accounts(base: str, n: int) -> list[DrillAccount]:
    with httpx.Client(timeout=30) as client:
        return [signup(client, base) for _ in range(n)]


def post(base: str, writer: DrillAccount, body: str) -> str:
    with httpx.Client(timeout=30) as client:
        r = write(client, "POST", f"{base}/api/v1/posts", writer.headers, "a post",
                  json={"body": body})
    return str(r.json()["id"])


def test_followers_check_sees_posts_the_workers_never_pushed(
        base: str, app_settings: Settings, workers: dict[str, Any], tmp_path: Path) -> None:
    writers = accounts(base, 2)
    fans = accounts(base, 3)
    followers = Followers.create(base, False, fans, [w.token for w in writers])
    assert sorted(followers.followed) == sorted(w.id for w in writers)
    # cached feeds: without this read a feed is rebuilt from PostgreSQL when first read, and
    # would show the posts below although no worker pushed them
    followers.warm(base, False)
    # the fan-out worker gone (as when a drill kills it): new posts reach no cached feed
    stop_process(workers["fanout"])
    try:
        acked = [post(base, w, f"not fanned out yet {i}") for w in writers for i in range(2)]
        got = missed(base, False, followers, acked, limit_s=2, every=0.5)
        assert not got.ok and got.missing == {a.username: 4 for a in fans}, got
        assert got.summary() == ("3 of 3 followers missed posts (12 missing of 4 looked for "
                                 "in each feed)")
    finally:
        workers["fanout"] = start_worker(app_settings, "fanout", tmp_path / "fanout.log")
    # a worker back: the group's unread entries reach every feed, and new posts too
    acked += [post(base, writers[1], f"fanned out {i}") for i in range(2)]
    got = missed(base, False, followers, acked, limit_s=60, every=0.5)
    assert got.ok and got.posts == 6, got


def test_images_are_read_back_by_checksum(base: str, app_settings: Settings) -> None:
    uploader = accounts(base, 1)[0]
    media = MediaTraffic({"a": base}, {"a": uploader}, False, "itest", upload_every=0.3,
                         read_every=0.1)
    media.seed()
    fault_start = time.time()
    media.start()
    time.sleep(2.0)
    fault_end = time.time()
    events = media.stop()
    assert not media.wrong_reads
    ups = [e for e in events if e.kind == UPLOAD]
    reads = [e for e in events if e.kind == IMAGE]
    assert ups and reads and all(e.status == 201 for e in ups) and all(e.ok for e in reads)
    check = verify_images(media.uploads, False, fault_start, fault_end, events, limit_s=30)
    assert check.ok and check.before_fault == 1 and check.during_fault == len(ups), check
    assert check.fault_reads["ok"] == len(reads) and check.fault_reads["failed"] == 0
    # behind the app's back: one stored image's bytes changed, another deleted
    store = MediaStore.from_settings(app_settings)
    changed, gone = media.uploads[0].url, media.uploads[1].url
    store.client.put_object(Bucket=store.bucket, Key=changed.split("/media/", 1)[1],
                            Body=png(b"other bytes"), ContentType="image/png")
    store.client.delete_object(Bucket=store.bucket, Key=gone.split("/media/", 1)[1])
    check = verify_images(media.uploads, False, fault_start, fault_end, events, limit_s=2)
    assert not check.ok and check.wrong == [changed] and check.unreadable == [gone], check
    assert check.summary() == f"of {len(media.uploads)} images 1 unreadable, 1 with other bytes"
