"""The web UI over HTTP (in-process, real PostgreSQL, Redis and SeaweedFS): sessions and cookie
flags, CSRF refusals, escaping, the 1,000-character limit, blocked accounts, images, rate-limit
page, the installable-app files, and every page and action once."""

from __future__ import annotations

import json
import re
import secrets
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from freehold.app.main import create_app
from freehold.app.settings import Settings
from tests.integration.app.conftest import make_admin, new_user, wait_for
from tests.integration.app.test_accounts import tiny_png

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


class Browser:
    """One person's browser over the shared in-process client: its own cookie jar."""

    def __init__(self, client: TestClient) -> None:
        self.c = client
        self.jar = httpx.Cookies()
        self.username = ""

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self.c.cookies = self.jar
        try:
            return self.c.request(method, url, follow_redirects=kw.pop("follow", False), **kw)
        finally:
            self.jar = httpx.Cookies(self.c.cookies)
            self.c.cookies = httpx.Cookies()

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def csrf(self, page: str = "/login") -> str:
        r = self.get(page)
        m = CSRF_RE.search(r.text)
        assert m, f"no csrf field on {page}: {r.status_code} {r.text[:300]}"
        return m.group(1)

    def post(self, url: str, data: dict[str, Any] | None = None, *, page: str = "/login",
             files: Any = None, csrf: bool = True, **kw: Any) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body["csrf"] = self.csrf(page)
        return self.request("POST", url, data=body, files=files, **kw)

    def signup(self, prefix: str = "w") -> Browser:
        self.username = f"{prefix}_{secrets.token_hex(4)}"
        r = self.post("/signup", {"username": self.username, "password": PASSWORD,
                                  "email": f"{self.username}@example.org",
                                  "display_name": f"{prefix.title()} Person"}, page="/signup")
        assert r.status_code == 303 and r.headers["location"] == "/", r.text
        return self

    def login(self, login: str, password: str) -> httpx.Response:
        return self.post("/login", {"login": login, "password": password})

    def compose(self, body: str, files: Any = None, **extra: str) -> httpx.Response:
        return self.post("/compose", {"body": body, **extra}, page="/", files=files)


def post_ids(html: str) -> list[str]:
    return re.findall(r'<article class="post[^"]*" id="p(\d+)"', html)


def last_post_id(b: Browser, client: TestClient) -> str:
    r = b.get(f"/u/{b.username}")
    ids = post_ids(r.text)
    assert ids, r.text[:500]
    return ids[0]


@pytest.fixture
def browser(client: TestClient) -> Browser:
    return Browser(client)


def test_session_cookie_flags_login_logout(client: TestClient) -> None:
    b = Browser(client).signup("ck")
    home = b.get("/")
    assert home.status_code == 200 and f"/u/{b.username}" in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    out = b.post("/logout", {}, page="/")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert b.get("/").headers["location"] == "/login"
    assert b.get("/notifications").headers["location"].startswith("/login?next=/notifications")

    wrong = b.login(b.username, "not the password")
    assert wrong.status_code == 401 and "wrong username or password" in wrong.text
    assert "fh_session" not in wrong.headers.get("set-cookie", "")
    ok = b.login(b.username, PASSWORD)
    assert ok.status_code == 303
    cookie = [c for c in ok.headers.get_list("set-cookie") if c.startswith("fh_session=")][0]
    flags = {f.strip().lower() for f in cookie.split(";")}
    assert "httponly" in flags and "samesite=lax" in flags and "secure" not in flags
    assert b.get("/").status_code == 200
    # over https the cookie is Secure
    tls = b.post("https://testserver/login", {"login": b.username, "password": PASSWORD},
                 page="/")
    cookie = [c for c in tls.headers.get_list("set-cookie") if c.startswith("fh_session=")][0]
    assert "secure" in {f.strip().lower() for f in cookie.split(";")}
    # a second session's cookie is the same as an API token: it works as bearer too
    token = cookie.split(";")[0].split("=", 1)[1]
    me = client.get("/api/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == b.username


def test_csrf_refused(client: TestClient) -> None:
    a = Browser(client).signup("cs")
    other = Browser(client)
    foreign = other.csrf("/login")  # a valid token, but for another browser's cookie
    for data in ({"body": "no token"}, {"body": "bad token", "csrf": "0" * 64},
                 {"body": "foreign", "csrf": foreign}):
        r = a.post("/compose", data, csrf=False)
        assert r.status_code == 403, (data, r.status_code)
        assert "reload the page" in r.text
    assert a.post("/logout", {}, csrf=False).status_code == 403
    assert a.get("/").status_code == 200  # still logged in
    fresh = Browser(client)
    r = fresh.post("/login", {"login": a.username, "password": PASSWORD}, csrf=False)
    assert r.status_code == 403
    # nothing was posted
    assert post_ids(a.get(f"/u/{a.username}").text) == []
    # the same form with its token goes through
    assert a.compose("with a token").status_code == 303
    assert len(post_ids(a.get(f"/u/{a.username}").text)) == 1


def test_user_text_escaped_and_linked(client: TestClient) -> None:
    a = Browser(client).signup("xs")
    b = Browser(client).signup("xs")
    body = f'<script>alert("x")</script> <img src=x onerror=alert(1)> #Freedom @{b.username}'
    assert a.compose(body).status_code == 303
    pid = last_post_id(a, client)
    page = b.get(f"/p/{pid}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert '<a class="tag" href="/tag/freedom">#Freedom</a>' in page
    assert f'<a class="mention" href="/u/{b.username}">@{b.username}</a>' in page
    # display names and bios are escaped too
    r = a.post("/settings/profile", {"display_name": "<b>bold</b>", "bio": "<i>x</i> #bio"},
               page="/settings")
    assert r.status_code == 303
    prof = b.get(f"/u/{a.username}").text
    assert "&lt;b&gt;bold&lt;/b&gt;" in prof and "<b>bold</b>" not in prof
    assert "&lt;i&gt;x&lt;/i&gt;" in prof


def test_length_limit_1001_refused(client: TestClient) -> None:
    a = Browser(client).signup("ln")
    ok = a.compose("é" * 999 + "😀")
    assert ok.status_code == 303
    r = a.compose("a" * 1001)
    assert r.status_code == 422
    assert "text is 1001 characters long: at most 1000 allowed" in r.text
    assert "a" * 1001 in r.text  # the text is kept in the form
    assert len(post_ids(a.get(f"/u/{a.username}").text)) == 1


def test_blocked_account_posts_not_shown(client: TestClient) -> None:
    author = Browser(client).signup("bl")
    viewer = Browser(client).signup("bl")
    assert author.compose("before the block, unique-bl-marker").status_code == 303
    pid = last_post_id(author, client)
    assert viewer.post(f"/u/{author.username}/follow", {}, page="/").status_code == 303
    assert pid in post_ids(viewer.get("/").text)
    assert pid in post_ids(viewer.get("/discover").text)
    assert viewer.post(f"/u/{author.username}/block", {}, page="/").status_code == 303
    prof = viewer.get(f"/u/{author.username}")
    assert prof.status_code == 200 and "You blocked this account" in prof.text
    assert "unique-bl-marker" not in prof.text
    for page in ("/", "/discover"):
        assert pid not in post_ids(viewer.get(page).text)
    assert viewer.get(f"/p/{pid}").status_code == 403
    # and the blocked author cannot see the blocker's posts either
    assert viewer.compose("blocker writes").status_code == 303
    bpid = last_post_id(viewer, client)
    assert author.get(f"/p/{bpid}").status_code == 403
    assert viewer.post(f"/u/{author.username}/unblock", {}, page="/").status_code == 303
    assert "unique-bl-marker" in viewer.get(f"/u/{author.username}").text


def test_images_upload_and_limit(client: TestClient) -> None:
    a = Browser(client).signup("im")
    png = tiny_png()
    two = [("images", (f"{i}.png", png, "image/png")) for i in range(2)]
    assert a.compose("two pictures", files=two).status_code == 303
    page = a.get(f"/u/{a.username}").text
    urls = re.findall(r'<img src="(/media/media/\d+\.png)"', page)
    assert len(urls) == 2
    img = a.get(urls[0])
    assert img.status_code == 200 and img.content == png
    five = [("images", (f"{i}.png", png, "image/png")) for i in range(5)]
    r = a.compose("too many", files=five)
    assert r.status_code == 422 and "5 images: at most 4 per post" in r.text
    bad = a.compose("not an image", files=[("images", ("x.png", b"hello", "image/png"))])
    assert bad.status_code == 422 and "not an image" in bad.text
    assert len(post_ids(a.get(f"/u/{a.username}").text)) == 1
    # avatar upload
    r = a.post("/settings/avatar", {}, page="/settings",
               files=[("avatar", ("me.png", png, "image/png"))])
    assert r.status_code == 303
    assert re.search(r'class="avatar big" src="/media/avatars/\d+\.png"',
                     a.get("/settings").text)


def test_rate_limit_is_a_friendly_429(app_settings: Settings) -> None:
    settings = app_settings.replace(rl_login_per_account=2, db_pool_min=1, db_pool_max=2)
    with TestClient(create_app(settings)) as c:
        b = Browser(c)
        who = f"nobody_{secrets.token_hex(4)}"
        codes = [b.login(who, "wrong password").status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        r = b.login(who, "wrong password")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "Slow down" in r.text and "try again" in r.text
        assert r.headers["content-type"].startswith("text/html")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def test_installable_app_files(client: TestClient) -> None:
    b = Browser(client)
    m = b.get("/manifest.webmanifest")
    assert m.status_code == 200 and m.headers["content-type"] == "application/manifest+json"
    doc = json.loads(m.text)
    assert doc["start_url"] == "/" and doc["display"] == "standalone"
    for icon in doc["icons"]:
        r = b.get(icon["src"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        s = int(icon["sizes"].split("x")[0])
        assert png_size(r.content) == (s, s)
    assert {i["purpose"] for i in doc["icons"]} == {"any", "maskable"}
    sw = b.get("/sw.js")
    assert sw.status_code == 200
    assert sw.headers["content-type"].startswith("application/javascript")
    assert sw.headers["service-worker-allowed"] == "/"
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", sw.text).group(1))  # type: ignore[union-attr]
    assert "/offline" in shell and "/" not in shell
    assert all(u.startswith(("/static/", "/icons/", "/offline")) for u in shell)
    for url in shell:  # every shell file exists (the install step would fail otherwise)
        assert b.get(url).status_code == 200, url
    assert 'req.mode === "navigate"' in sw.text and "__" not in sw.text
    off = b.get("/offline")
    assert off.status_code == 200 and "public" in off.headers["cache-control"]
    login = b.get("/login").text
    assert 'rel="manifest" href="/manifest.webmanifest"' in login
    assert b.get("/no/such/page").status_code == 404


def test_every_page_and_action(client: TestClient, workers: object) -> None:
    a = Browser(client).signup("pa")
    b = Browser(client).signup("pb")
    # follow, followers list, feed
    assert b.post(f"/u/{a.username}/follow", {}, page="/").status_code == 303
    assert b.username in a.get(f"/u/{a.username}/followers").text
    assert a.username in b.get(f"/u/{b.username}/following").text
    assert a.compose(f"Hello #webtest_{a.username} from a").status_code == 303
    pid = last_post_id(a, client)
    assert pid in post_ids(b.get("/").text)
    # reply, echo (plain and with comment), upvote and undo
    assert b.compose("a reply", reply_to=pid).status_code == 303
    thread = b.get(f"/p/{pid}").text
    assert "a reply" in thread and 'id="reply"' in thread
    assert b.post(f"/p/{pid}/echo", {"next": "/"}, page="/").status_code == 303
    assert b.post(f"/p/{pid}/echo", {"body": "worth reading"}, page="/").status_code == 303
    again = b.post(f"/p/{pid}/echo", {}, page="/")
    assert again.status_code == 409 and "already echoed" in again.text
    assert b.post(f"/p/{pid}/upvote", {}, page="/").status_code == 303
    assert 'aria-pressed="true">▲ 1<' in b.get(f"/p/{pid}").text
    assert b.post(f"/p/{pid}/upvote", {"undo": "1"}, page="/").status_code == 303
    assert 'aria-pressed="false">▲ 0<' in b.get(f"/p/{pid}").text
    # notifications (written by the notify worker): unread count in the nav, mark read
    def unread() -> int:
        m = re.search(r'<span class="badge" id="unread">(\d+)</span>', a.get("/").text)
        return int(m.group(1)) if m else 0

    assert wait_for(lambda: unread() >= 3, timeout=60)  # follow, reply, echo, upvote
    notes = a.get("/notifications").text
    assert "followed you" in notes and "replied to you" in notes and "echoed your post" in notes
    assert a.post("/notifications/read", {}, page="/notifications").status_code == 303
    assert unread() == 0
    # discover, search, hashtag
    assert pid in post_ids(b.get("/discover").text)
    s = b.get("/search", params={"q": a.username[:6]}).text
    assert f"/u/{a.username}" in s
    assert f"#webtest_{a.username}" in b.get("/search", params={"q": "#webtest_"}).text
    assert pid in post_ids(b.get(f"/tag/webtest_{a.username}").text)
    # mute hides a's posts from b's feed
    assert b.post(f"/u/{a.username}/mute", {}, page="/").status_code == 303
    assert pid not in post_ids(b.get("/").text)
    assert b.post(f"/u/{a.username}/unmute", {}, page="/").status_code == 303
    # report a post and an account
    assert "Incitement to violence" in b.get(f"/report?post={pid}").text
    r = b.post("/report", {"post": pid, "reason": "spam", "note": "ads"}, page="/")
    assert r.status_code == 200 and "in the jury queue" in r.text
    r = b.post("/report", {"account": a.username, "reason": "nope"}, page="/")
    assert r.status_code == 422 and "reason: one of" in r.text
    # jury and admin are refused to ordinary accounts
    assert b.get("/jury").status_code == 403
    assert b.get("/admin").status_code == 403
    assert b.post("/admin/flag", {"username": b.username, "flag": "admin"},
                  page="/").status_code == 403
    # delete one's own post; not someone else's
    assert b.post(f"/p/{pid}/delete", {}, page="/").status_code == 403
    assert a.post(f"/p/{pid}/delete", {"next": f"/p/{pid}"}, page="/").headers[
        "location"] == "/"
    assert a.get(f"/p/{pid}").status_code == 404
    # delete the account: wrong confirmation, wrong password, then for real
    r = a.post("/settings/delete", {"confirm": "someone", "password": PASSWORD},
               page="/settings")
    assert r.status_code == 422
    r = a.post("/settings/delete", {"confirm": a.username, "password": "wrong password"},
               page="/settings")
    assert r.status_code == 401 or "wrong username or password" in r.text
    r = a.post("/settings/delete", {"confirm": a.username, "password": PASSWORD},
               page="/settings")
    assert r.status_code == 303 and r.headers["location"] == "/signup"
    assert b.get(f"/u/{a.username}").status_code == 404


def test_admin_and_jury_pages(client: TestClient) -> None:
    admin_api = make_admin(client)
    admin = Browser(client)
    assert admin.login(admin_api.username, admin_api.password).status_code == 303
    juror = Browser(client).signup("ju")
    author = new_user(client, "ja")
    post = client.post("/api/v1/posts", headers=author.h, json={"body": "to judge"}).json()
    reporter = new_user(client, "jr")
    client.post("/api/v1/reports", headers=reporter.h,
                json={"reason": "incitement", "post_id": post["id"]})
    page = admin.get("/admin")
    assert page.status_code == 200 and 'id="queue-size"' in page.text
    size = int(re.search(r'id="queue-size">(\d+)<', page.text).group(1))  # type: ignore[union-attr]
    assert size >= 1
    r = admin.post("/admin/flag", {"username": juror.username, "flag": "juror", "value": "on"},
                   page="/admin", follow=True)
    assert r.status_code == 200 and f"juror granted to @{juror.username}" in r.text
    r = admin.post("/admin/flag", {"username": "no_such_user_x", "flag": "verified"},
                   page="/admin")
    assert r.status_code == 404
    r = admin.post("/admin/flag", {"username": author.username, "flag": "verified"},
                   page="/admin")
    assert r.status_code == 303
    assert 'class="verified"' in juror.get(f"/u/{author.username}").text
    q = juror.get("/jury")
    assert q.status_code == 200 and 'id="case-' in q.text and "to judge" in q.text
    case_id = re.search(rf'id="case-(\d+)">\s*<h2>Incitement to violence · <a href="/u/'
                        rf'{author.username}"', q.text)
    assert case_id, q.text[:2000]
    cid = case_id.group(1)
    # a logged-in account without the juror role cannot vote: a 403 page, no vote counted
    outsider = Browser(client).signup("nj")
    r = outsider.post(f"/jury/{cid}/vote", {"decision": "remove"}, page="/")
    assert r.status_code == 403 and "Jurors only" in r.text
    assert r.headers["content-type"].startswith("text/html") and "Not allowed" in r.text
    r = juror.post(f"/jury/{cid}/vote", {"decision": "remove"}, page="/jury")
    assert r.status_code == 303 and r.headers["location"] == "/jury?voted=open"  # 1 of 2
    again = juror.post(f"/jury/{cid}/vote", {"decision": "remove"}, page="/jury")
    assert again.status_code == 409
    reader = new_user(client, "jv")
    assert client.get(f"/api/v1/posts/{post['id']}", headers=reader.h).status_code == 200
    # a second juror's agreeing vote decides (jury_votes = 2): the post is hidden
    second = Browser(client).signup("ju")
    r = admin.post("/admin/flag", {"username": second.username, "flag": "juror", "value": "on"},
                   page="/admin")
    assert r.status_code == 303
    assert f'id="case-{cid}"' in second.get("/jury").text
    r = second.post(f"/jury/{cid}/vote", {"decision": "remove"}, page="/jury")
    assert r.status_code == 303 and r.headers["location"] == "/jury?voted=removed"
    assert "Vote recorded (case removed)" in second.get(r.headers["location"]).text
    assert f'id="case-{cid}"' not in juror.get("/jury").text
    assert client.get(f"/api/v1/posts/{post['id']}", headers=reader.h).status_code == 404
    own = client.get(f"/api/v1/posts/{post['id']}", headers=author.h)
    assert own.status_code == 200 and own.json()["hidden"] is True
    assert juror.get(f"/p/{post['id']}").status_code == 404
    author_web = Browser(client)
    assert author_web.login(author.username, author.password).status_code == 303
    assert "Hidden by the jury" in author_web.get(f"/p/{post['id']}").text
    assert outsider.post(f"/jury/{cid}/vote", {"decision": "keep"}, page="/").status_code == 403


def audit_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<li id="audit-(\d+)">', html)]


def audit_entry(html: str, entry_id: int | str) -> str:
    m = re.search(rf'<li id="audit-{entry_id}">(.*?)</li>', html, re.S)
    assert m, f"audit entry {entry_id} not on the page"
    return m.group(1)


def appeal_block(html: str, appeal_id: str) -> str | None:
    m = re.search(rf'<article class="case" id="appeal-{appeal_id}">(.*?)</article>', html, re.S)
    return m.group(1) if m else None


def test_admin_audit_log_and_decided_appeals(client: TestClient) -> None:
    from freehold.app.services import audit
    from tests.integration.app.test_moderation import juror, remove_by_jury

    admin_api = make_admin(client)
    admin = Browser(client)
    assert admin.login(admin_api.username, admin_api.password).status_code == 303
    jurors = (juror(client, admin_api), juror(client, admin_api))
    author, reporter = new_user(client, "wa"), new_user(client, "wr")
    # enough audit entries for two pages of 50 (when this test runs alone)
    api_log = client.get("/api/v1/admin/audit", params={"limit": 120}, headers=admin_api.h)
    for i in range(max(0, 110 - len(api_log.json()["items"]))):
        assert client.put(f"/api/v1/admin/accounts/{reporter.id}/verified", headers=admin_api.h,
                          json={"value": i % 2 == 0}).status_code == 200
    cases, appeals = [], []
    bodies = ['<script>alert("ap")</script> it was satire', "second <b>look</b> please"]
    for i, body in enumerate(bodies):
        p = client.post("/api/v1/posts", headers=author.h, json={"body": f"post {i}"}).json()
        c = client.post("/api/v1/reports", headers=reporter.h,
                        json={"reason": "spam", "post_id": p["id"]}).json()["id"]
        remove_by_jury(client, c, jurors)
        ap = client.post(f"/api/v1/moderation/cases/{c}/appeal", headers=author.h,
                         json={"body": body})
        assert ap.status_code == 201
        cases.append(c)
        appeals.append(ap.json()["id"])
    page = admin.get("/admin").text
    for aid in appeals:
        block = appeal_block(page, aid)
        assert block is not None and 'action="/admin/appeals/' in block
    assert "&lt;script&gt;alert(&#34;ap&#34;)&lt;/script&gt;" in page
    assert '<script>alert("ap")' not in page and "<b>look</b>" not in page
    # decide through the web forms: grant the first, deny the second
    r = admin.post(f"/admin/appeals/{appeals[0]}", {"grant": "yes"}, page="/admin")
    assert r.status_code == 303 and r.headers["location"] == "/admin?done=appeal%20granted"
    r = admin.post(f"/admin/appeals/{appeals[1]}", {"grant": "no"}, page="/admin")
    assert r.status_code == 303 and r.headers["location"] == "/admin?done=appeal%20denied"
    opened = admin.get("/admin").text
    assert appeal_block(opened, appeals[0]) is None and appeal_block(opened, appeals[1]) is None
    for status, mine, other in (("granted", 0, 1), ("denied", 1, 0)):
        r = admin.get(f"/admin?appeals={status}")
        assert r.status_code == 200 and f"{status.title()} appeals" in r.text
        assert f'<strong aria-current="page">{status}</strong>' in r.text
        block = appeal_block(r.text, appeals[mine])
        assert block is not None, r.text[-3000:]
        assert appeal_block(r.text, appeals[other]) is None
        assert f'<span class="appeal-status">{status}</span>' in block
        assert f'by <a href="/u/{admin_api.username}">@{admin_api.username}</a>' in block
        assert f"@{author.username}" in block and "<form" not in block  # decided: no buttons
    granted = admin.get("/admin?appeals=granted").text
    assert "&lt;script&gt;alert(&#34;ap&#34;)&lt;/script&gt;" in granted
    assert '<script>alert("ap")' not in granted
    assert "second &lt;b&gt;look&lt;/b&gt; please" in admin.get("/admin?appeals=denied").text
    assert admin.get("/admin?appeals=nope").status_code == 422
    assert admin.get("/admin?before=abc").status_code == 404
    nobody = Browser(client).signup("na")
    for url in ("/admin?appeals=denied", "/admin?before=1"):
        r = nobody.get(url)
        assert r.status_code == 403 and appeals[1] not in r.text

    # the audit log: newest first; one entry with hostile text in its detail
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    client.portal.call(audit.log, ctx.db, int(admin_api.id), "test.note",  # type: ignore[union-attr]
                       "account", int(author.id), {"note": "<img src=x onerror=alert(1)>"})
    first = admin.get("/admin")
    assert first.status_code == 200 and 'aria-label="Audit log"' in first.text
    ids = audit_ids(first.text)
    api = client.get("/api/v1/admin/audit", params={"limit": 50}, headers=admin_api.h).json()
    assert ids == [int(e["id"]) for e in api["items"]]  # newest first, 50 a page
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    note = audit_entry(first.text, ids[0])
    assert "<code class=\"action\">test.note</code>" in note
    assert "&lt;img src=x onerror=alert(1)&gt;" in note and "<img src=x" not in first.text
    assert f'<a href="/u/{author.username}">@{author.username}</a>' in note
    denial = [e for e in api["items"] if e["action"] == "appeal.denied"
              and e["target_id"] == cases[1]]
    assert denial, "the denial is among the newest entries"
    row = audit_entry(first.text, denial[0]["id"])
    assert f'<a href="/u/{admin_api.username}">@{admin_api.username}</a>' in row  # who
    assert '<code class="action">appeal.denied</code>' in row  # did what
    assert f"case {cases[1]}" in row and f"@{author.username}" in row  # to which target
    assert f"appeal_id: {appeals[1]}" in row
    when = re.search(r'<time datetime="([^"]+)">', row)
    assert when and when.group(1) == denial[0]["at"]  # when
    age = datetime.now(UTC) - datetime.fromisoformat(when.group(1))
    assert timedelta(0) <= age < timedelta(minutes=10)
    # older entries: the cursor is the last id shown; page 2 continues where page 1 ended
    more = re.search(r'<a rel="next" href="/admin\?before=(\d+)#audit">Older entries</a>',
                     first.text)
    assert more and int(more.group(1)) == ids[-1]
    second = admin.get(f"/admin?before={ids[-1]}")
    ids2 = audit_ids(second.text)
    api2 = client.get("/api/v1/admin/audit", params={"limit": 50, "before": str(ids[-1])},
                      headers=admin_api.h).json()["items"]
    assert ids2 == [int(e["id"]) for e in api2] and ids2 and max(ids2) < min(ids)
    assert 'href="/admin#audit">Newest</a>' in second.text
    # the appeals filter is kept when paging
    assert f'href="/admin?appeals=denied&amp;before={ids[-1]}#audit"' in admin.get(
        "/admin?appeals=denied").text


def test_linkify_escapes_everything_it_does_not_link() -> None:
    from freehold.app.web.render import linkify

    out = str(linkify("it's <b>#Tag</b> & #x, @bob_1! see https://ex.org/a?b=1&c=<2>."))
    assert out == ("it&#39;s &lt;b&gt;<a class=\"tag\" href=\"/tag/tag\">#Tag</a>&lt;/b&gt; &amp; "
                   "<a class=\"tag\" href=\"/tag/x\">#x</a>, "
                   "<a class=\"mention\" href=\"/u/bob_1\">@bob_1</a>! see "
                   "<a href=\"https://ex.org/a?b=1&amp;c=\" rel=\"nofollow noopener ugc\" "
                   "target=\"_blank\">https://ex.org/a?b=1&amp;c=</a>&lt;2&gt;.")
    assert str(linkify('x"onmouseover=alert(1) #a"b')) == (
        'x&#34;onmouseover=alert(1) <a class="tag" href="/tag/a">#a</a>&#34;b')
    assert str(linkify("a@b.org mail#not")) == "a@b.org mail#not"
