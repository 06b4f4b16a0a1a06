"""Mastodon.py (the Python library most Mastodon bots and tools use) against the app served by
uvicorn on loopback, end to end: register an app, authorize by code through the consent form,
verify credentials, post with an image, reply, favourite, reblog, follow, home timeline paged
with fetch_next / fetch_previous, notifications, search, report."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freehold.app.settings import Settings
from tests.integration.app.conftest import streams_idle, wait_for
from tests.integration.app.mastodon.test_api import PNG
from tests.integration.app.test_web_browser import serving
from tests.mastoclient import client_for, signup


@pytest.fixture(scope="module")
def base(app_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(app_settings, tmp_path_factory.mktemp("mastodon-py")) as url:
        yield url


def test_mastodon_py_scenario(base: str, workers: Any, rds: Any, tmp_path: Path) -> None:
    alice, bob = signup(base, "mpy"), signup(base, "mpy")
    a, b = client_for(base, alice), client_for(base, bob)
    assert a.verify_minimum_version("4.0.0", cached=False)
    me = a.account_verify_credentials()
    assert me.username == alice["name"] and me.id == int(alice["account"]["id"]) or \
        str(me.id) == alice["account"]["id"]
    b.account_follow(me.id)

    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    media = a.media_post(str(image), mime_type="image/png", description="a red dot")
    assert media.type == "image" and media.description == "a red dot"
    tag = f"mpy{secrets.token_hex(3)}"
    first = a.status_post(f"hello from Mastodon.py #{tag}", media_ids=[media])
    assert first.media_attachments[0].url.startswith("http")
    posts = [a.status_post(f"post {i}") for i in range(4)]
    reply = b.status_reply(first, "a reply")
    assert str(reply.in_reply_to_id) == str(first.id)
    fav = b.status_favourite(first)
    assert fav.favourited and fav.favourites_count == 1
    boost = b.status_reblog(first)
    assert str(boost.reblog.id) == str(first.id)
    streams_idle(rds)

    newest = [str(p.id) for p in reversed(posts)]
    page1 = wait_for(lambda: (p := b.timeline_home(limit=2)) and
                     [str(s.id) for s in p] == [str(boost.id), str(reply.id)] and p,
                     every=0.5)
    page2 = b.fetch_next(page1)
    assert [str(s.id) for s in page2] == newest[:2]
    page3 = b.fetch_next(page2)
    assert [str(s.id) for s in page3] == newest[2:4]
    back = b.fetch_previous(page3)
    assert [str(s.id) for s in back] == newest[:2]

    notes = wait_for(lambda: (n := a.notifications()) and len(n) >= 4 and n, every=0.5)
    assert {"follow", "favourite", "reblog", "mention"} <= {n.type for n in notes}
    found = b.search_v2(alice["name"], result_type="accounts")
    assert alice["name"] in [x.username for x in found.accounts]
    tagged = b.search_v2(f"#{tag}")
    assert str(first.id) in [str(s.id) for s in tagged.statuses]
    rep = b.report(me.id, status_ids=[first.id], comment="test report", category="spam")
    assert rep.category == "spam"
    b.account_unfollow(me.id)
    assert not b.account_relationships(me.id)[0].following
