"""Moderation through the API: reports, jury queue order, votes (jurors only), strikes,
suspension, appeals, pre-flagger, admin stats, audit log."""

from __future__ import annotations

from datetime import datetime
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


def audit_items(client: TestClient, admin: User) -> list[dict[str, Any]]:
    r = client.get("/api/v1/admin/audit", params={"limit": 500}, headers=admin.h)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def remove_by_jury(client: TestClient, case_id: str, jurors: tuple[User, User]) -> None:
    first = client.post(f"/api/v1/moderation/cases/{case_id}/votes", headers=jurors[0].h,
                        json={"decision": "remove"})
    assert first.status_code == 200 and first.json()["status"] == "open", first.text
    last = client.post(f"/api/v1/moderation/cases/{case_id}/votes", headers=jurors[1].h,
                       json={"decision": "remove"})
    assert last.status_code == 200 and last.json()["status"] == "removed", last.text


def test_account_report_jury_strikes_then_suspends(client: TestClient) -> None:
    admin = make_admin(client)
    jurors = (juror(client, admin), juror(client, admin))
    target, reporter, other = new_user(client, "acc"), new_user(client, "rep"), new_user(client)
    post = client.post("/api/v1/posts", headers=target.h, json={"body": "my words"}).json()
    r = client.post("/api/v1/reports", headers=reporter.h,
                    json={"reason": "harassment", "account_id": target.id, "note": "DMs"})
    assert r.status_code == 201, r.text
    c1 = r.json()
    assert c1["target_kind"] == "account" and c1["account_id"] == target.id
    assert c1["post_id"] is None and c1["username"] == target.username
    assert c1["reason"] == "harassment" and c1["status"] == "open" and c1["reports_count"] == 1
    # a second reporter joins the same case; the same reporter twice, oneself, nobody: refused
    again = client.post("/api/v1/reports", headers=other.h,
                        json={"reason": "spam", "account_id": target.id})
    assert again.status_code == 201 and again.json()["id"] == c1["id"]
    assert again.json()["reports_count"] == 2 and again.json()["reason"] == "harassment"
    assert client.post("/api/v1/reports", headers=reporter.h,
                       json={"reason": "spam", "account_id": target.id}).status_code == 409
    assert client.post("/api/v1/reports", headers=target.h,
                       json={"reason": "spam", "account_id": target.id}).status_code == 422
    assert client.post("/api/v1/reports", headers=reporter.h,
                       json={"reason": "spam", "account_id": "1"}).status_code == 404
    queued = [c for c in client.get("/api/v1/moderation/queue", params={"limit": 100},
                                    headers=jurors[0].h).json()["items"] if c["id"] == c1["id"]]
    assert queued and queued[0]["post"] is None
    assert [x["note"] for x in queued[0]["reports"]] == ["DMs", ""]

    remove_by_jury(client, c1["id"], jurors)
    me = client.get("/api/v1/accounts/me", headers=target.h).json()
    assert me["strikes"] == 1 and me["suspended"] is False
    # an account removal strikes, but hides none of the account's posts
    seen = client.get(f"/api/v1/posts/{post['id']}", headers=reporter.h)
    assert seen.status_code == 200 and seen.json()["hidden"] is False
    assert client.post("/api/v1/posts", headers=target.h, json={"body": "still"}).status_code == 201

    # the decided case is closed: a new report opens a new case; its removal is strike 2
    r = client.post("/api/v1/reports", headers=other.h,
                    json={"reason": "threat", "account_id": target.id})
    assert r.status_code == 201
    c2 = r.json()["id"]
    assert c2 != c1["id"] and r.json()["reports_count"] == 1
    remove_by_jury(client, c2, jurors)
    me = client.get("/api/v1/accounts/me", headers=target.h).json()
    assert me["strikes"] == 2 and me["suspended"] is True  # strikes_to_suspend = 2
    r = client.post("/api/v1/posts", headers=target.h, json={"body": "can I?"})
    assert r.status_code == 403 and r.json()["error"] == "suspended"
    assert client.get(f"/api/v1/posts/{post['id']}", headers=reporter.h).status_code == 200
    mine = client.get("/api/v1/moderation/mine", headers=target.h).json()["items"]
    assert {(c["id"], c["target_kind"], c["status"]) for c in mine} == {
        (c1["id"], "account", "removed"), (c2, "account", "removed")}

    log = audit_items(client, admin)
    about_target = [(e["action"], (e["detail"] or {}).get("case_id")) for e in log
                    if e["target_kind"] == "account" and e["target_id"] == target.id]
    assert ("account.strike", c1["id"]) in about_target
    assert ("account.strike", c2) in about_target
    assert ("account.suspend", None) in about_target
    assert ("report.create", c1["id"]) in about_target
    hides = [e for e in log if e["action"] == "post.hide"
             and (e["detail"] or {}).get("case_id") in (c1["id"], c2)]
    assert hides == []
    decided = {e["target_id"] for e in log if e["action"] == "case.removed"}
    assert {c1["id"], c2} <= decided


def test_queue_severity_first_then_oldest(client: TestClient) -> None:
    admin = make_admin(client)
    j = juror(client, admin)
    reporter = new_user(client, "rep")
    authors = [new_user(client, "qo") for _ in range(4)]
    posts = [client.post("/api/v1/posts", headers=a.h, json={"body": f"queued {i}"}).json()
             for i, a in enumerate(authors)]
    made = []  # three threats in order, then a later incitement: it must come first
    for p, reason in zip(posts, ("threat", "threat", "threat", "incitement"), strict=True):
        r = client.post("/api/v1/reports", headers=reporter.h,
                        json={"reason": reason, "post_id": p["id"]})
        assert r.status_code == 201, r.text
        made.append(r.json())
    created = [datetime.fromisoformat(c["created_at"]) for c in made]
    assert created[0] < created[1] < created[2] < created[3]
    ids = [c["id"] for c in made]
    queue = client.get("/api/v1/moderation/queue", params={"limit": 100}, headers=j.h).json()[
        "items"]
    got = [c["id"] for c in queue if c["id"] in ids]
    assert got == [ids[3], ids[0], ids[1], ids[2]], (got, ids)
    # the whole queue keeps that order: severity ascending, then created_at ascending
    keys = [(c["severity"], datetime.fromisoformat(c["created_at"])) for c in queue]
    assert keys == sorted(keys)


def test_denied_appeal_keeps_post_hidden_and_strike(client: TestClient) -> None:
    admin = make_admin(client)
    jurors = (juror(client, admin), juror(client, admin))
    author, reporter = new_user(client, "dn"), new_user(client, "rep")
    p = client.post("/api/v1/posts", headers=author.h, json={"body": "over the line"}).json()
    case = client.post("/api/v1/reports", headers=reporter.h,
                       json={"reason": "harassment", "post_id": p["id"]}).json()["id"]
    remove_by_jury(client, case, jurors)
    ap = client.post(f"/api/v1/moderation/cases/{case}/appeal", headers=author.h,
                     json={"body": "please reconsider"})
    assert ap.status_code == 201
    aid = ap.json()["id"]
    r = client.post(f"/api/v1/admin/appeals/{aid}", headers=admin.h, json={"grant": False})
    assert r.status_code == 200 and r.json() == {"id": aid, "status": "denied"}
    # deciding again, or appealing again, is refused
    assert client.post(f"/api/v1/admin/appeals/{aid}", headers=admin.h,
                       json={"grant": True}).status_code == 409
    assert client.post(f"/api/v1/moderation/cases/{case}/appeal", headers=author.h,
                       json={"body": "again"}).status_code == 409
    # the post stays hidden, the strike stays, the case stays removed
    assert client.get(f"/api/v1/posts/{p['id']}", headers=reporter.h).status_code == 404
    own = client.get(f"/api/v1/posts/{p['id']}", headers=author.h)
    assert own.status_code == 200 and own.json()["hidden"] is True
    me = client.get("/api/v1/accounts/me", headers=author.h).json()
    assert me["strikes"] == 1 and me["suspended"] is False
    mine = client.get("/api/v1/moderation/mine", headers=author.h).json()["items"]
    assert [(c["id"], c["status"]) for c in mine] == [(case, "removed")]
    # listed as denied (with who decided), not as open
    open_ids = [a["id"] for a in client.get("/api/v1/admin/appeals", headers=admin.h).json()[
        "items"]]
    assert aid not in open_ids
    denied = client.get("/api/v1/admin/appeals", params={"status": "denied"},
                        headers=admin.h).json()["items"]
    mine_denied = [a for a in denied if a["id"] == aid]
    assert mine_denied and mine_denied[0]["status"] == "denied"
    assert mine_denied[0]["decided_by"] == admin.username and mine_denied[0]["decided_at"]
    assert aid not in [a["id"] for a in client.get(
        "/api/v1/admin/appeals", params={"status": "granted"}, headers=admin.h).json()["items"]]
    log = audit_items(client, admin)
    denial = [e for e in log if e["action"] == "appeal.denied" and e["target_id"] == case]
    assert len(denial) == 1 and denial[0]["actor_id"] == admin.id
    assert denial[0]["target_kind"] == "case" and denial[0]["detail"] == {"appeal_id": aid}
    assert not [e for e in log if e["action"] == "post.unhide" and e["target_id"] == p["id"]]
    assert not [e for e in log if e["action"] in ("appeal.granted", "account.unsuspend")
                and e["target_id"] in (case, author.id)]
