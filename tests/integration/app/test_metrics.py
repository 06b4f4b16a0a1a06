"""Live metrics read at scrape time (app.metrics) when their store fails or answers otherwise
than expected: their series stay, with NaN, and freehold_metric_read_ok says which failed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from freehold.app.main import create_app
from freehold.app.redis_client import FANOUT_LAG, STREAM_EVENTS, STREAM_POSTS
from freehold.app.settings import Settings
from tests.integration.app.test_social_misc import metric_samples

DB = 6  # a Redis database of this test's own: the shared one's streams feed the workers


@pytest.fixture(scope="module")
def own_redis(app_settings: Settings) -> Iterator[tuple[TestClient, Any]]:
    url = app_settings.redis_url.rsplit("/", 1)[0] + f"/{DB}"
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    try:
        with TestClient(create_app(app_settings.replace(redis_url=url, s3_endpoint=""))) as c:
            yield c, r
    finally:
        r.flushdb()
        r.close()


def scrape(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return metric_samples(r.text)


def by_label(samples: list[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    return {labels[label]: v for labels, v in samples}


def test_stream_lag_reported_as_failed_when_redis_answers_unexpectedly(
        own_redis: tuple[TestClient, Any]) -> None:
    client, r = own_redis
    r.xgroup_create(STREAM_POSTS, "fanout", id="$", mkstream=True)
    r.set(STREAM_EVENTS, "not a stream")  # XINFO GROUPS answers WRONGTYPE
    r.set(FANOUT_LAG, "1500")
    try:
        now = scrape(client)
        for name in ("freehold_stream_lag", "freehold_stream_pending"):
            got = {(lb["stream"], lb["group"]): v for lb, v in now[name]}
            assert got[(STREAM_POSTS, "fanout")] == 0.0
            # the unreadable stream's series is there, with an error value (not left out)
            assert math.isnan(got[(STREAM_EVENTS, "unreadable")]), (name, got)
        ok = by_label(now["freehold_metric_read_ok"], "metric")
        assert ok == {STREAM_POSTS: 1.0, STREAM_EVENTS: 0.0, "fanout_lag": 1.0,
                      "moderation_queue": 1.0}
        assert now["freehold_fanout_lag_seconds_last"] == [({}, 1.5)]
        # a stream not created yet is no failure: no group, nothing behind
        r.delete(STREAM_EVENTS)
        ok = by_label(scrape(client)["freehold_metric_read_ok"], "metric")
        assert ok[STREAM_EVENTS] == 1.0
    finally:
        r.delete(STREAM_EVENTS, STREAM_POSTS, FANOUT_LAG)
