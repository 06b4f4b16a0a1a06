"""Moderation through the API: reports, jury queue order, votes (jurors only), strikes,
suspension, appeals, pre-flagger, admin stats, audit log."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.integration.app.conftest import User, make_admin, new_user, wait_for


def juror(client: TestClient, admin: User) -> User:
    j = new_user(client, "jr")
    r = client.put(f"/api/v1/admin/accounts/{j.id}/juror", headers=admin.h, json={"value": True})
    assert r.status_code == 200 and r.json()["juror"] is True
    return j


def test_jury_hides_strikes_suspends_and_appeal_restores(client: TestClient) -> None:
    admin = make_admin(client)
    j1, j2 = juror(client, admin), juror(client, admin)
    author, reporter = new_user(client, "bad"), new_user(client, "rep")
    p1 = client.post("/api/v1/posts", headers=author.h, json={"body": "spam spam"}).json()
    p2 = client.post("/api/v1/posts", headers=author.h, json={"body": "a threat"}).json()
    r = client.post("/api/v1/reports", headers=reporter.h,
                    json={"reason": "spam", "post_id": p1["id"], "note": "ads"})
    assert r.status_code == 201
    c1 = r.json()["id"]
    assert client.post("/api/v1/reports", headers=reporter.h,
                       json={"reason": "spam", "post_id": p1["id"]}).status_code == 409
    c2 = client.post("/api/v1/reports", headers=reporter.h,
                     json={"reason": "threat", "post_id": p2["id"]}).json()["id"]
    # a second reporter with a worse reason joins the same case and raises its severity
    other = new_user(client, "rep")
    again = client.post("/api/v1/reports", headers=other.h,
                        json={"reason": "incitement", "post_id": p1["id"]}).json()
    assert again["id"] == c1 and again["reason"] == "incitement" and again["reports_count"] == 2
    # a non-juror may neither see the queue nor vote
    assert client.get("/api/v1/moderation/queue", headers=reporter.h).status_code == 403
    r = client.post(f"/api/v1/moderation/cases/{c1}/votes", headers=reporter.h,
                    json={"decision": "remove"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    q = [c["id"] for c in client.get("/api/v1/moderation/queue", params={"limit": 100},
                                     headers=j1.h).json()["items"]]
    assert q.index(c1) < q.index(c2)  # incitement before threat
    assert client.post(f"/api/v1/moderation/cases/{c1}/votes", headers=j1.h,
                       json={"decision": "remove"}).json()["status"] == "open"
    assert client.post(f"/api/v1/moderation/cases/{c1}/votes", headers=j1.h,
                       json={"decision": "remove"}).status_code == 409
    assert client.post(f"/api/v1/moderation/cases/{c1}/votes", headers=j2.h,
                       json={"decision": "remove"}).json()["status"] == "removed"
    assert client.get(f"/api/v1/posts/{p1['id']}", headers=reporter.h).status_code == 404
    me = client.get("/api/v1/accounts/me", headers=author.h).json()
    assert me["strikes"] == 1 and me["suspended"] is False
    for j in (j1, j2):
        client.post(f"/api/v1/moderation/cases/{c2}/votes", headers=j.h,
                    json={"decision": "remove"})
    me = client.get("/api/v1/accounts/me", headers=author.h).json()
    assert me["strikes"] == 2 and me["suspended"] is True
    r = client.post("/api/v1/posts", headers=author.h, json={"body": "still here?"})
    assert r.status_code == 403 and r.json()["error"] == "suspended"
    # a suspended account can still appeal
    mine = client.get("/api/v1/moderation/mine", headers=author.h).json()["items"]
    assert {c["id"] for c in mine} == {c1, c2}
    ap = client.post(f"/api/v1/moderation/cases/{c2}/appeal", headers=author.h,
                     json={"body": "it was a quote from a film"})
    assert ap.status_code == 201
    assert client.post(f"/api/v1/moderation/cases/{c2}/appeal", headers=author.h,
                       json={"body": "again"}).status_code == 409
    assert client.post(f"/api/v1/admin/appeals/{ap.json()['id']}", headers=j1.h,
                       json={"grant": True}).status_code == 403
    open_ids = [a["id"] for a in client.get("/api/v1/admin/appeals", headers=admin.h).json()[
        "items"]]
    assert ap.json()["id"] in open_ids
    r = client.post(f"/api/v1/admin/appeals/{ap.json()['id']}", headers=admin.h,
                    json={"grant": True})
    assert r.json()["status"] == "granted"
    me = client.get("/api/v1/accounts/me", headers=author.h).json()
    assert me["strikes"] == 1 and me["suspended"] is False
    assert client.get(f"/api/v1/posts/{p2['id']}", headers=reporter.h).status_code == 200
    assert client.post("/api/v1/posts", headers=author.h, json={"body": "back"}).status_code == 201
    actions = [a["action"] for a in client.get("/api/v1/admin/audit", params={"limit": 500},
                                               headers=admin.h).json()["items"]]
    for needed in ("report.create", "case.vote", "case.removed", "post.hide", "account.strike",
                   "account.suspend", "appeal.create", "appeal.granted", "account.unsuspend",
                   "post.unhide", "account.juror"):
        assert needed in actions, needed


def test_keep_votes_dismiss(client: TestClient) -> None:
    admin = make_admin(client)
    j1, j2 = juror(client, admin), juror(client, admin)
    author, reporter = new_user(client, "ok"), new_user(client, "rep")
    p = client.post("/api/v1/posts", headers=author.h, json={"body": "harmless"}).json()
    case = client.post("/api/v1/reports", headers=reporter.h,
                       json={"reason": "other", "post_id": p["id"]}).json()["id"]
    for j in (j1, j2):
        last = client.post(f"/api/v1/moderation/cases/{case}/votes", headers=j.h,
                           json={"decision": "keep"}).json()
    assert last["status"] == "kept"
    assert client.get(f"/api/v1/posts/{p['id']}", headers=reporter.h).status_code == 200
    assert client.post(f"/api/v1/moderation/cases/{case}/appeal", headers=author.h,
                       json={"body": "?"}).status_code == 409
    # a juror never judges a case about themselves
    own = client.post("/api/v1/posts", headers=j1.h, json={"body": "juror post"}).json()
    c = client.post("/api/v1/reports", headers=reporter.h,
                    json={"reason": "spam", "post_id": own["id"]}).json()["id"]
    q = [x["id"] for x in client.get("/api/v1/moderation/queue", params={"limit": 100},
                                     headers=j1.h).json()["items"]]
    assert c not in q
    assert client.post(f"/api/v1/moderation/cases/{c}/votes", headers=j1.h,
                       json={"decision": "keep"}).status_code == 403


def test_preflagger_queues_incitement_first(client: TestClient, workers: Any) -> None:
    admin = make_admin(client)
    j = juror(client, admin)
    u = new_user(client, "angry")
    calm = client.post("/api/v1/posts", headers=u.h,
                       json={"body": "We should all go vote on Tuesday"}).json()
    hot = client.post("/api/v1/posts", headers=u.h,
                      json={"body": "Tomorrow we storm it. Bring your guns and hang them all."}
                      ).json()

    def queued() -> list[dict[str, Any]]:
        items = client.get("/api/v1/moderation/queue", params={"limit": 100},
                           headers=j.h).json()["items"]
        return [c for c in items if c["post_id"] == hot["id"]]

    case = wait_for(queued)[0]
    assert case["source"] == "preflag" and case["reason"] == "incitement"
    assert case["severity"] == 0
    items = client.get("/api/v1/moderation/queue", params={"limit": 100}, headers=j.h).json()[
        "items"]
    assert all(c["post_id"] != calm["id"] for c in items)
    assert items[0]["severity"] == 0
    stats = client.get("/api/v1/admin/moderation", headers=admin.h).json()
    assert stats["queue_size"] >= 1 and stats["oldest_age_seconds"] >= 0
    assert stats["by_reason"].get("incitement", 0) >= 1
    assert client.get("/api/v1/admin/moderation", headers=j.h).status_code == 403
