"""Every route of the Mastodon API, each answer checked against the entity definitions of
Mastodon's documentation (tests/integration/app/mastodon/entities.py), and what it does in
Freehold: favourite = upvote, reblog = echo, report → jury queue, pages by max_id / since_id /
min_id with Link headers."""

from __future__ import annotations

import io
import re
from typing import Any

from starlette.testclient import TestClient

from tests.integration.app.conftest import new_user, streams_idle, wait_for
from tests.integration.app.mastodon.conftest import MUser, authorize
from tests.integration.app.mastodon.entities import check, check_list

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
       b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
       b"\x00\x00\x00IEND\xaeB`\x82")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, (r.request.url, r.status_code, r.text)
    return r.json()


def links(r: Any) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"',
                                                r.headers.get("link", ""))}


def test_start_up_routes(client: TestClient) -> None:
    m = authorize(client, new_user(client, "ma"))
    v1 = ok(client.get("/api/v1/instance"))
    check(v1, "V1_Instance")
    v2 = ok(client.get("/api/v2/instance"))
    check(v2, "Instance")
    for v in (v1, v2):
        assert re.match(r"^4\.3\.0 \(compatible; Freehold \d+\.\d+\.\d+\)$", v["version"])
        assert v["configuration"]["statuses"]["max_characters"] == 1000
        assert v["configuration"]["statuses"]["max_media_attachments"] == 4
        assert v["configuration"]["media_attachments"]["image_size_limit"] > 0
    assert v2["configuration"]["urls"]["streaming"].startswith("ws")
    assert ok(client.get("/api/v1/custom_emojis")) == []
    check(ok(client.get("/api/v1/preferences", headers=m.h)), "Preferences")
    for path in ("/api/v1/filters", "/api/v2/filters", "/api/v1/lists", "/api/v1/announcements",
                 "/api/v1/follow_requests", "/api/v1/bookmarks", "/api/v1/conversations",
                 "/api/v1/trends/links", "/api/v2/suggestions", "/api/v1/followed_tags"):
        assert ok(client.get(path, headers=m.h)) == [], path
    check_list(ok(client.get("/api/v1/trends/tags", headers=m.h)), "Tag")
    check_list(ok(client.get("/api/v1/trends/statuses", headers=m.h)), "Status")
    assert ok(client.get("/api/v1/markers", headers=m.h,
                         params={"timeline[]": ["home", "notifications"]})) == {}
    set_ = ok(client.post("/api/v1/markers", headers=m.h,
                          json={"home": {"last_read_id": "123"}}))
    check(set_["home"], "Marker")
    got = ok(client.get("/api/v1/markers", headers=m.h, params={"timeline[]": "home"}))
    assert got["home"]["last_read_id"] == "123"
    again = ok(client.post("/api/v1/markers", headers=m.h,
                           data={"home[last_read_id]": "456"}))
    assert again["home"]["version"] == 2


def test_accounts_and_relationships(client: TestClient) -> None:
    a, b = new_user(client, "ma"), new_user(client, "ma")
    ma, mb = authorize(client, a), authorize(client, b)
    me = ok(client.patch("/api/v1/accounts/update_credentials", headers=ma.h,
                         data={"display_name": "Ann <b>", "note": "line 1\nline <2>"}))
    check(me, "CredentialAccount")
    assert me["display_name"] == "Ann <b>"
    assert me["note"] == "<p>line 1<br />line &lt;2&gt;</p>" and me["source"]["note"]
    with_avatar = ok(client.patch("/api/v1/accounts/update_credentials", headers=ma.h,
                                  files={"avatar": ("a.png", io.BytesIO(PNG), "image/png")}))
    assert "/media/" in with_avatar["avatar"]
    check(ok(client.get(f"/api/v1/accounts/{b.id}", headers=ma.h)), "Account")
    assert client.get("/api/v1/accounts/99", headers=ma.h).status_code == 404
    rel = ok(client.post(f"/api/v1/accounts/{b.id}/follow", headers=ma.h))
    check(rel, "Relationship")
    assert rel["following"] is True and rel["id"] == b.id
    rels = ok(client.get("/api/v1/accounts/relationships", headers=mb.h,
                         params={"id[]": [a.id, "0"]}))
    check_list(rels, "Relationship")
    assert [r["followed_by"] for r in rels if r["id"] == a.id] == [True]
    followers = client.get(f"/api/v1/accounts/{b.id}/followers", headers=ma.h)
    check_list(ok(followers), "Account")
    assert [x["id"] for x in followers.json()] == [a.id]
    check_list(ok(client.get(f"/api/v1/accounts/{a.id}/following", headers=ma.h)), "Account")
    assert ok(client.post(f"/api/v1/accounts/{b.id}/unfollow", headers=ma.h))["following"] \
        is False
    for action, key in (("block", "blocking"), ("mute", "muting")):
        assert ok(client.post(f"/api/v1/accounts/{b.id}/{action}", headers=ma.h))[key]
        listed = ok(client.get(f"/api/v1/{action}s", headers=ma.h))
        check_list(listed, "Account")
        assert [x["id"] for x in listed] == [b.id]
        assert not ok(client.post(f"/api/v1/accounts/{b.id}/un{action}", headers=ma.h))[key]
    found = ok(client.get("/api/v1/accounts/lookup", headers=ma.h, params={"acct": b.username}))
    check(found, "Account")
    assert found["id"] == b.id
    assert client.get("/api/v1/accounts/lookup", headers=ma.h,
                      params={"acct": "nobody_here"}).status_code == 404
    hits = ok(client.get("/api/v1/accounts/search", headers=ma.h, params={"q": b.username}))
    check_list(hits, "Account")
    assert b.id in [x["id"] for x in hits]


def _post(client: TestClient, m: MUser, text: str, **more: Any) -> dict[str, Any]:
    doc = ok(client.post("/api/v1/statuses", headers=m.h, json={"status": text, **more}))
    check(doc, "Status")
    return doc  # type: ignore[no-any-return]


def test_statuses_media_favourite_reblog_context(client: TestClient, workers: Any) -> None:
    a, b = new_user(client, "ma"), new_user(client, "ma")
    ma, mb = authorize(client, a), authorize(client, b)
    media = ok(client.post("/api/v2/media", headers=ma.h, data={"description": "a dot"},
                           files={"file": ("d.png", io.BytesIO(PNG), "image/png")}))
    check(media, "MediaAttachment")
    assert media["description"] == "a dot"
    put = ok(client.put(f"/api/v1/media/{media['id']}", headers=ma.h,
                        json={"description": "one red dot"}))
    assert put["description"] == "one red dot"
    check(ok(client.get(f"/api/v1/media/{media['id']}", headers=ma.h)), "MediaAttachment")
    assert client.get(f"/api/v1/media/{media['id']}", headers=mb.h).status_code == 404

    key = {"Idempotency-Key": "k-" + a.id}
    first = ok(client.post("/api/v1/statuses", headers={**ma.h, **key}, data={
        "status": f"<hi> @{b.username} #Mastodon https://example.org/x.",
        "media_ids[]": [media["id"]]}))
    check(first, "Status")
    dup = ok(client.post("/api/v1/statuses", headers={**ma.h, **key},
                         data={"status": "other text"}))
    assert dup["id"] == first["id"]  # the same status again, not a second one
    assert first["media_attachments"][0]["description"] == "one red dot"
    assert first["mentions"] == [{"id": b.id, "username": b.username, "acct": b.username,
                                  "url": first["mentions"][0]["url"]}]
    assert first["tags"][0]["name"] == "mastodon"
    content = first["content"]
    assert content.startswith("<p>&lt;hi&gt; <span class=\"h-card\"")
    assert 'class="mention hashtag" rel="tag">#<span>Mastodon</span></a>' in content
    assert '<a href="https://example.org/x" ' in content and "</a>.</p>" in content

    reply = _post(client, mb, "a reply", in_reply_to_id=first["id"])
    assert reply["in_reply_to_id"] == first["id"]
    assert reply["in_reply_to_account_id"] == a.id
    deeper = _post(client, ma, "deeper", in_reply_to_id=reply["id"])
    ctx = ok(client.get(f"/api/v1/statuses/{reply['id']}/context", headers=ma.h))
    check(ctx, "Context")
    assert [s["id"] for s in ctx["ancestors"]] == [first["id"]]
    assert [s["id"] for s in ctx["descendants"]] == [deeper["id"]]
    root = ok(client.get(f"/api/v1/statuses/{first['id']}/context", headers=ma.h))
    assert [s["id"] for s in root["descendants"]] == [reply["id"], deeper["id"]]

    fav = ok(client.post(f"/api/v1/statuses/{first['id']}/favourite", headers=mb.h))
    check(fav, "Status")
    assert fav["favourited"] is True and fav["favourites_count"] == 1
    native = client.get(f"/api/v1/posts/{first['id']}", headers=b.h).json()
    assert native["upvoted"] is True and native["upvotes_count"] == 1  # an upvote
    by = ok(client.get(f"/api/v1/statuses/{first['id']}/favourited_by", headers=ma.h))
    check_list(by, "Account")
    assert [x["id"] for x in by] == [b.id]

    boost = ok(client.post(f"/api/v1/statuses/{first['id']}/reblog", headers=mb.h))
    check(boost, "Status")
    assert boost["id"] != first["id"] and boost["reblog"]["id"] == first["id"]
    assert boost["reblog"]["reblogged"] is True and boost["reblog"]["favourited"] is True
    assert boost["account"]["id"] == b.id and boost["content"] == ""
    again = ok(client.post(f"/api/v1/statuses/{first['id']}/reblog", headers=mb.h))
    assert again["id"] == boost["id"]
    by = ok(client.get(f"/api/v1/statuses/{first['id']}/reblogged_by", headers=ma.h))
    assert [x["id"] for x in by] == [b.id]
    # acting on the reblog wrapper acts on the original
    fav2 = ok(client.post(f"/api/v1/statuses/{boost['id']}/unfavourite", headers=mb.h))
    assert fav2["id"] == first["id"] and fav2["favourited"] is False
    un = ok(client.post(f"/api/v1/statuses/{first['id']}/unreblog", headers=mb.h))
    assert un["id"] == first["id"] and un["reblogged"] is False
    assert client.get(f"/api/v1/statuses/{boost['id']}", headers=ma.h).status_code == 404

    check_list(ok(client.get(f"/api/v1/accounts/{a.id}/statuses", headers=mb.h)), "Status")
    no_replies = ok(client.get(f"/api/v1/accounts/{a.id}/statuses", headers=mb.h,
                               params={"exclude_replies": "true"}))
    assert [s["id"] for s in no_replies] == [first["id"]]
    with_media = ok(client.get(f"/api/v1/accounts/{a.id}/statuses", headers=mb.h,
                               params={"only_media": "1"}))
    assert [s["id"] for s in with_media] == [first["id"]]
    gone = ok(client.delete(f"/api/v1/statuses/{deeper['id']}", headers=ma.h))
    check(gone, "Status")
    assert gone["text"] == "deeper"
    assert client.get(f"/api/v1/statuses/{deeper['id']}", headers=ma.h).status_code == 404
    assert client.delete(f"/api/v1/statuses/{reply['id']}", headers=ma.h).status_code == 403
    too_long = client.post("/api/v1/statuses", headers=ma.h, json={"status": "x" * 1001})
    assert too_long.status_code == 422 and "error" in too_long.json()

    report = ok(client.post("/api/v1/reports", headers=mb.h, json={
        "account_id": a.id, "status_ids": [first["id"]], "comment": "spammy",
        "category": "spam"}))
    check(report, "Report")
    assert report["status_ids"] == [first["id"]]


def test_report_reaches_the_jury_queue(client: TestClient) -> None:
    from tests.integration.app.conftest import make_admin

    admin = make_admin(client)
    a, b = new_user(client, "ma"), new_user(client, "ma")
    mb = authorize(client, b)
    post = client.post("/api/v1/posts", headers=a.h, json={"body": "report me"}).json()
    r = ok(client.post("/api/v1/reports", headers=mb.h, data={
        "account_id": a.id, "status_ids[]": post["id"], "category": "legal"}))
    client.put(f"/api/v1/admin/accounts/{admin.id}/juror", headers=admin.h,
               json={"value": True})
    queue = client.get("/api/v1/moderation/queue", headers=admin.h).json()["items"]
    case = [c for c in queue if c["post_id"] == post["id"]]
    assert case and case[0]["reason"] == "illegal" and case[0]["id"] == r["id"]


def test_timelines_pages_and_links(client: TestClient, workers: Any, rds: Any) -> None:
    a, b = new_user(client, "ma"), new_user(client, "ma")
    ma, mb = authorize(client, a), authorize(client, b)
    ok(client.post(f"/api/v1/accounts/{a.id}/follow", headers=mb.h))
    tag = f"pg{a.id[-6:]}"
    ids = [_post(client, ma, f"post {i} #{tag}")["id"] for i in range(7)]
    streams_idle(rds)

    def home(**params: Any) -> Any:
        r = client.get("/api/v1/timelines/home", headers=mb.h, params=params)
        check_list(ok(r), "Status")
        return r

    wait_for(lambda: [s["id"] for s in home(limit=7).json()] == ids[::-1])
    p1 = home(limit=3)
    assert [s["id"] for s in p1.json()] == ids[::-1][:3]
    nxt = links(p1)["next"]
    assert f"max_id={ids[4]}" in nxt and "limit=3" in nxt
    p2 = home(limit=3, max_id=ids[4])
    assert [s["id"] for s in p2.json()] == ids[::-1][3:6]
    prev = home(limit=3, min_id=ids[1])
    assert [s["id"] for s in prev.json()] == [ids[4], ids[3], ids[2]]
    since = home(limit=3, since_id=ids[1])
    assert [s["id"] for s in since.json()] == [ids[6], ids[5], ids[4]]
    assert "next" not in links(home(limit=20))  # the last page: no next
    assert home(limit=3, min_id=ids[6]).json() == []

    tagged = client.get(f"/api/v1/timelines/tag/{tag}", headers=mb.h, params={"limit": 5})
    check_list(ok(tagged), "Status")
    assert [s["id"] for s in tagged.json()] == ids[::-1][:5]
    older = client.get(f"/api/v1/timelines/tag/{tag}", headers=mb.h,
                       params={"max_id": ids[2]})
    assert [s["id"] for s in older.json()] == [ids[1], ids[0]]
    public = client.get("/api/v1/timelines/public", headers=mb.h, params={"limit": 2})
    check_list(ok(public), "Status")
    assert ok(client.get("/api/v1/timelines/public", headers=mb.h,
                         params={"remote": "true"})) == []
    # ids are numeric strings that sort in time order
    assert sorted(ids) == ids and all(len(i) == len(ids[0]) for i in ids)


def test_notifications_and_search(client: TestClient, workers: Any, rds: Any) -> None:
    a, b = new_user(client, "ma"), new_user(client, "ma")
    ma, mb = authorize(client, a), authorize(client, b)
    ok(client.post(f"/api/v1/accounts/{a.id}/follow", headers=mb.h))
    tag = f"srch{a.id[-6:]}"
    post = _post(client, ma, f"findable #{tag}")
    ok(client.post(f"/api/v1/statuses/{post['id']}/favourite", headers=mb.h))
    ok(client.post(f"/api/v1/statuses/{post['id']}/reblog", headers=mb.h))
    _post(client, mb, f"@{a.username} hello", in_reply_to_id=post["id"])
    streams_idle(rds)

    def listed(**params: Any) -> list[dict[str, Any]]:
        r = client.get("/api/v1/notifications", headers=ma.h, params=params)
        check_list(ok(r), "Notification")
        return r.json()  # type: ignore[no-any-return]

    got = wait_for(lambda: (n := listed()) and len(n) == 4 and n)
    assert sorted(n["type"] for n in got) == ["favourite", "follow", "mention", "reblog"]
    for n in got:
        if n["type"] != "follow":
            check(n["status"], "Status")
    reblog = next(n for n in got if n["type"] == "reblog")
    assert reblog["status"]["id"] == post["id"]  # the status that was reblogged
    assert [n["type"] for n in listed(**{"types[]": ["favourite"]})] == ["favourite"]
    assert "follow" not in [n["type"] for n in listed(**{"exclude_types[]": ["follow"]})]
    one = ok(client.get(f"/api/v1/notifications/{got[0]['id']}", headers=ma.h))
    check(one, "Notification")
    assert ok(client.post(f"/api/v1/notifications/{got[0]['id']}/dismiss", headers=ma.h)) == {}
    assert len(listed()) == 3
    assert ok(client.post("/api/v1/notifications/clear", headers=ma.h)) == {}
    assert listed() == []

    res = ok(client.get("/api/v2/search", headers=mb.h, params={"q": a.username}))
    check(res, "Search")
    assert a.id in [x["id"] for x in res["accounts"]]
    res = ok(client.get("/api/v2/search", headers=mb.h,
                        params={"q": f"#{tag}", "type": "hashtags"}))
    assert [t["name"] for t in res["hashtags"]] == [tag] and res["accounts"] == []
    res = ok(client.get("/api/v2/search", headers=mb.h, params={"q": f"#{tag}"}))
    assert post["id"] in [s["id"] for s in res["statuses"]]
    res = ok(client.get("/api/v2/search", headers=mb.h, params={"q": post["url"]}))
    assert [s["id"] for s in res["statuses"]] == [post["id"]]
    check(ok(client.get(f"/api/v1/tags/{tag}", headers=mb.h)), "Tag")
