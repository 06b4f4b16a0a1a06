"""Posts through the API: length in code points, images, replies, echoes, upvotes, tags,
mentions, deletion."""

from __future__ import annotations

import io
import re

import psycopg
from starlette.testclient import TestClient

from freehold.app.settings import Settings
from tests.integration.app.conftest import User, new_user
from tests.integration.app.test_accounts import tiny_png
from tests.integration.app.test_web import Browser


def test_length_limit_in_code_points(client: TestClient) -> None:
    u = new_user(client, "len")
    ok = client.post("/api/v1/posts", headers=u.h, json={"body": "é" * 999 + "😀"})
    assert ok.status_code == 201, ok.text
    assert len(ok.json()["body"]) == 1000
    r = client.post("/api/v1/posts", headers=u.h, json={"body": "a" * 1001})
    assert r.status_code == 422
    assert r.json()["field"] == "body" and "1001 characters" in r.json()["message"]
    assert client.post("/api/v1/posts", headers=u.h, json={"body": "   "}).status_code == 422
    assert client.post("/api/v1/posts", json={"body": "anonymous"}).status_code == 401


def test_tags_mentions_and_reply_thread(client: TestClient) -> None:
    a, b = new_user(client, "th"), new_user(client, "th")
    root = client.post("/api/v1/posts", headers=a.h,
                       json={"body": f"Hello #Freehold and #self_hosting @{b.username}!"}).json()
    assert root["tags"] == ["freehold", "self_hosting"]
    assert root["mentions"] == [b.username]
    reply = client.post("/api/v1/posts", headers=b.h,
                        json={"body": "welcome", "reply_to_id": root["id"]}).json()
    assert reply["reply_to_id"] == root["id"] and reply["root_id"] == root["id"]
    deeper = client.post("/api/v1/posts", headers=a.h,
                         json={"body": "thanks", "reply_to_id": reply["id"]}).json()
    assert deeper["root_id"] == root["id"]
    t = client.get(f"/api/v1/posts/{reply['id']}/thread", headers=a.h).json()
    assert [p["id"] for p in t["ancestors"]] == [root["id"]]
    assert [p["id"] for p in t["replies"]] == [deeper["id"]]
    assert client.get(f"/api/v1/posts/{root['id']}", headers=a.h).json()["replies_count"] == 1
    r = client.post("/api/v1/posts", headers=a.h, json={"body": "x", "reply_to_id": "12345"})
    assert r.status_code == 404
    tagged = client.get("/api/v1/tags/freehold/posts", headers=b.h).json()["items"]
    assert root["id"] in [p["id"] for p in tagged]
    found = client.get("/api/v1/search/tags", params={"q": "#self_h"}, headers=b.h).json()
    assert found["items"][0]["tag"] == "self_hosting"


def test_thread_of_a_deep_conversation(client: TestClient) -> None:
    """Ancestors oldest first (the whole chain), replies oldest first; a deleted reply and a
    muted replier's reply left out; a post of a muted account is not found."""
    a, b, c = new_user(client, "dt"), new_user(client, "dt"), new_user(client, "dt")
    chain = [client.post("/api/v1/posts", headers=a.h, json={"body": "root"}).json()["id"]]
    for i in range(4):
        who = (b, a)[i % 2]
        chain.append(client.post("/api/v1/posts", headers=who.h, json={
            "body": f"level {i + 1}", "reply_to_id": chain[-1]}).json()["id"])
    mid = chain[3]
    replies = [client.post("/api/v1/posts", headers=who.h, json={
        "body": f"answer {i}", "reply_to_id": mid}).json()["id"] for i, who in enumerate((b, c, b))]
    assert client.delete(f"/api/v1/posts/{replies[2]}", headers=b.h).status_code == 204
    assert client.post(f"/api/v1/accounts/{c.id}/mute", headers=a.h).status_code == 200
    t = client.get(f"/api/v1/posts/{mid}/thread", headers=a.h).json()
    assert t["post"]["id"] == mid
    assert [p["id"] for p in t["ancestors"]] == chain[:3]
    assert [p["id"] for p in t["replies"]] == [chain[4], replies[0]]
    assert [p["id"] for p in client.get(f"/api/v1/posts/{mid}/thread", headers=b.h).json()[
        "replies"]] == [chain[4], replies[0], replies[1]]  # b did not mute c
    r = client.get(f"/api/v1/posts/{replies[1]}/thread", headers=a.h)
    assert r.status_code == 404
    assert client.get(f"/api/v1/posts/{replies[2]}/thread", headers=a.h).status_code == 404


def test_echo_and_upvote(client: TestClient) -> None:
    a, b = new_user(client, "ec"), new_user(client, "ec")
    p = client.post("/api/v1/posts", headers=a.h, json={"body": "echo me"}).json()
    e = client.post(f"/api/v1/posts/{p['id']}/echo", headers=b.h, json={})
    assert e.status_code == 201
    assert e.json()["echo_of"]["id"] == p["id"] and e.json()["body"] == ""
    assert client.post(f"/api/v1/posts/{p['id']}/echo", headers=b.h, json={}).status_code == 409
    # echoing the echo echoes the original; a comment makes a quote echo
    q = client.post(f"/api/v1/posts/{e.json()['id']}/echo", headers=a.h,
                    json={"body": "quoting"}).json()
    assert q["echo_of"]["id"] == p["id"] and q["body"] == "quoting"
    r = client.post(f"/api/v1/posts/{p['id']}/upvote", headers=b.h)
    assert r.json() == {"upvoted": True, "upvotes_count": 1}
    assert client.post(f"/api/v1/posts/{p['id']}/upvote", headers=b.h).json()[
        "upvotes_count"] == 1
    got = client.get(f"/api/v1/posts/{p['id']}", headers=b.h).json()
    assert got["upvoted"] is True and got["echoes_count"] == 2
    assert client.delete(f"/api/v1/posts/{p['id']}/upvote", headers=b.h).json()[
        "upvotes_count"] == 0


def test_upvote_refusals_change_nothing(client: TestClient, app_settings: Settings) -> None:
    """The checks of the one-statement upvote: no such post, a block either way, a hidden
    post, a suspended account; each refused with its status, no upvote and no count made."""
    a, b, c = (new_user(client, "uv") for _ in range(3))
    p = client.post("/api/v1/posts", headers=a.h, json={"body": "upvote me"}).json()

    def up(who: User, pid: str = p["id"]) -> int:
        return client.post(f"/api/v1/posts/{pid}/upvote", headers=who.h).status_code

    def count() -> int:
        return int(client.get(f"/api/v1/posts/{p['id']}", headers=a.h).json()["upvotes_count"])

    assert up(b, "1") == 404
    assert client.post(f"/api/v1/accounts/{b.id}/block", headers=a.h).status_code == 200
    assert up(b) == 403  # the author blocked the upvoter
    assert client.post(f"/api/v1/accounts/{a.id}/block", headers=c.h).status_code == 200
    assert up(c) == 403  # the upvoter blocked the author
    with psycopg.connect(app_settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE posts SET hidden = true WHERE id = %s", (int(p["id"]),))
        assert up(a) == 404
        assert count() == 0
        conn.execute("UPDATE posts SET hidden = false WHERE id = %s", (int(p["id"]),))
        conn.execute("UPDATE accounts SET suspended_at = now() WHERE id = %s", (int(a.id),))
        assert up(a) == 403
        conn.execute("UPDATE accounts SET suspended_at = NULL WHERE id = %s", (int(a.id),))
        assert conn.execute("SELECT count(*) FROM upvotes WHERE post_id = %s",
                            (int(p["id"]),)).fetchone() == (0,)
    assert count() == 0
    assert up(a) == 200 and count() == 1


def test_images_up_to_four(client: TestClient) -> None:
    u = new_user(client, "img")
    png = tiny_png()
    ids = []
    for _ in range(5):
        r = client.post("/api/v1/media", headers=u.h,
                        files={"file": ("p.png", io.BytesIO(png), "image/png")})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = client.post("/api/v1/posts", headers=u.h, json={"body": "too many", "media_ids": ids})
    assert r.status_code == 422 and r.json()["field"] == "media_ids"
    r = client.post("/api/v1/posts", headers=u.h, json={"body": "", "media_ids": ids[:4]})
    assert r.status_code == 201, r.text
    media = r.json()["media"]
    assert [m["id"] for m in media] == ids[:4]
    assert client.get(media[0]["url"]).content == png
    # an image is attached once; someone else's image cannot be attached
    other = new_user(client, "img")
    r = client.post("/api/v1/posts", headers=other.h, json={"body": "x", "media_ids": [ids[4]]})
    assert r.status_code == 422
    bad = client.post("/api/v1/media", headers=u.h,
                      files={"file": ("x.png", io.BytesIO(b"<svg/>"), "image/png")})
    assert bad.status_code == 422


def test_delete_own_post_only(client: TestClient) -> None:
    a, b = new_user(client, "del"), new_user(client, "del")
    png = tiny_png()
    m = client.post("/api/v1/media", headers=a.h,
                    files={"file": ("p.png", io.BytesIO(png), "image/png")}).json()
    p = client.post("/api/v1/posts", headers=a.h,
                    json={"body": "short-lived", "media_ids": [m["id"]]}).json()
    reply = client.post("/api/v1/posts", headers=b.h,
                        json={"body": "re", "reply_to_id": p["id"]}).json()
    assert client.delete(f"/api/v1/posts/{p['id']}", headers=b.h).status_code == 403
    assert client.delete(f"/api/v1/posts/{p['id']}", headers=a.h).status_code == 204
    assert client.get(f"/api/v1/posts/{p['id']}", headers=b.h).status_code == 404
    assert client.get(m["url"]).status_code == 404
    # the reply stays, detached from the deleted parent
    assert client.get(f"/api/v1/posts/{reply['id']}", headers=b.h).json()["reply_to_id"] is None
    me = client.get("/api/v1/accounts/me", headers=a.h).json()
    assert me["posts_count"] == 0


def test_thread_replies_come_in_pages(client: TestClient) -> None:
    """Replies oldest first, a page at a time: every reply once, the last page says no more;
    the web thread page links to the next page of replies."""
    a, b = new_user(client, "pg"), new_user(client, "pg")
    root = client.post("/api/v1/posts", headers=a.h, json={"body": "many replies"}).json()["id"]
    replies = [client.post("/api/v1/posts", headers=(a, b)[i % 2].h, json={
        "body": f"reply {i}", "reply_to_id": root}).json()["id"] for i in range(52)]
    seen, cursor, pages = [], None, 0
    for _ in range(30):  # bounded: 52 replies in pages of 5 take 11
        r = client.get(f"/api/v1/posts/{root}/thread", headers=b.h,
                       params={"limit": 5, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["post"]["id"] == root and len(t["replies"]) <= 5
        seen += [p["id"] for p in t["replies"]]
        pages += 1
        cursor = t["replies_next_cursor"]
        if cursor is None:
            break
    assert seen == replies and pages == 11
    assert client.get(f"/api/v1/posts/{root}/thread", headers=b.h,
                      params={"cursor": "not-an-id"}).status_code == 422
    # the web page: the first 50, then a link to the rest
    web = Browser(client).signup("pgw")
    page = web.get(f"/p/{root}")
    assert page.status_code == 200 and "reply 49" in page.text and "reply 50" not in page.text
    more = re.search(r'href="(/p/\d+\?cursor=\d+)#replies">More replies', page.text)
    assert more, page.text[-2000:]
    rest = web.get(more.group(1))
    assert "reply 50" in rest.text and "reply 51" in rest.text and "reply 49" not in rest.text
    assert "More replies" not in rest.text
