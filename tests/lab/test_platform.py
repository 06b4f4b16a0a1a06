"""`freehold up` on the lab (inventories/lab.yaml, the session's `main_lab`): the whole platform
through the sites' virtual IPs. After up: sign up, post, follow, read the feed; a rolling deploy
of a new release under light steady load fails no request; rollback; the server holding a
site's virtual IP dies → the address moves and requests succeed again within 10 s; an app
server dies under load → only requests in flight on it may fail; a second up changes nothing.

Secrets: the `lab_secrets` fixture (tests/lab/cli.py), shared with test_deploy.py, so both
modules deploy the same cluster. Killed servers are started again by the drill.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from mastodon import StreamListener
from playwright import sync_api  # required: a missing Playwright fails, never skips

from freehold.deploy.spec import ClusterSpec, load_spec
from tests.lab.cli import LAB_SPEC, LabSecrets, freehold_up
from tests.lab.cli import freehold as run_freehold
from tests.waiting import wait_for as shared_wait_for


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(LAB_SPEC)


@pytest.fixture(scope="module")
def env(lab_secrets: LabSecrets) -> dict[str, str]:
    return lab_secrets.env()


@pytest.fixture(scope="module")
def secrets_path(lab_secrets: LabSecrets) -> Path:
    return lab_secrets.path


def freehold(args: list[str], env: dict[str, str], timeout: float = 1800) -> tuple[int, Any]:
    code, doc, _ = run_freehold(args, env, timeout)
    return code, doc


@pytest.fixture(scope="module")
def first_up(main_lab: Any, lab_secrets: LabSecrets) -> dict[str, Any]:
    code, doc = freehold_up(lab_secrets)
    assert code == 0, doc
    return doc


@pytest.fixture(scope="module")
def ca(first_up: dict[str, Any]) -> str:
    return str(first_up["ca_file"])


def vip(spec: ClusterSpec, site: str) -> str:
    from freehold.roles.lb.config import site_vip

    address = site_vip(spec, site)
    assert address
    return address


def client(base: str, ca: str) -> Any:
    import httpx

    return httpx.Client(base_url=base, verify=ca, timeout=15)


wait_for = partial(shared_wait_for, every=0.5)


def release_status(lab: Any, host: str) -> dict[str, Any]:
    r = lab.run(host, "/usr/local/sbin/freehold-release status", timeout=30)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def running_release(lab: Any, host: str) -> str | None:
    from freehold.roles.app.config import running_release as parse

    r = lab.run(host, "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value "
                      "freehold-app)/cmdline", timeout=30)
    return parse(r.stdout)


# ---- after up ---------------------------------------------------------------------------

def test_up_prints_urls_and_admin_and_smoke_passed(first_up: dict[str, Any],
                                                   spec: ClusterSpec) -> None:
    assert first_up["ok"] and first_up["deploy"]["failed_hosts"] == []
    assert first_up["urls"] == [f"https://{vip(spec, 'a')}/", f"https://{vip(spec, 'b')}/"]
    assert first_up["admin"]["username"] == "demo_admin"
    assert set(first_up["smoke"]) == {"a", "b"}


def test_demo_admin_first_screen_through_the_vip(first_up: dict[str, Any], spec: ClusterSpec,
                                                 ca: str) -> None:
    """The demo network (app.demo) built by `freehold up`: the demo admin's home feed has posts
    with images served from the media store, replies and echoes; the jury queue has a report."""
    assert all(s["feed_items"] > 0 for s in first_up["smoke"].values()), first_up["smoke"]
    admin = first_up["admin"]
    with client(f"https://{vip(spec, 'a')}", ca) as site:
        r = site.post("/api/v1/auth/login", json={"login": admin["username"],
                                                  "password": admin["password"]})
        assert r.status_code == 200, r.text
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        items = site.get("/api/v1/timelines/home", params={"limit": 50}, headers=h).json()["items"]
        media = [m["url"] for p in items for m in p["media"]]
        assert media and any(p["reply_to_id"] for p in items) \
            and any(p["echo_of"] for p in items), items
        img = site.get(media[0])
        assert img.status_code == 200 and img.content.startswith(b"\x89PNG"), img.status_code
        queue = site.get("/api/v1/moderation/queue", headers=h)
        assert queue.status_code == 200 and queue.json()["items"], queue.text


def test_sign_up_post_follow_read_the_feed_through_the_vip(first_up: dict[str, Any],
                                                           spec: ClusterSpec, ca: str) -> None:
    tag = uuid.uuid4().hex[:8]
    with client(f"https://{vip(spec, 'a')}", ca) as site_a, \
            client(f"https://{vip(spec, 'b')}", ca) as site_b:
        r = site_a.post("/api/v1/accounts", json={"username": f"wri{tag}",
                                                  "email": f"w{tag}@example.org",
                                                  "password": "correct horse battery"})
        assert r.status_code == 201, r.text
        writer = r.json()
        r = site_b.post("/api/v1/accounts", json={"username": f"rea{tag}",
                                                  "email": f"r{tag}@example.org",
                                                  "password": "correct horse battery"})
        assert r.status_code == 201, r.text
        reader = r.json()
        auth_r = {"Authorization": f"Bearer {reader['token']}"}
        auth_w = {"Authorization": f"Bearer {writer['token']}"}
        r = site_b.post(f"/api/v1/accounts/{writer['account']['id']}/follow", headers=auth_r)
        assert r.status_code in (200, 201), r.text
        r = site_a.post("/api/v1/posts", json={"body": f"hello from site a #{tag}"},
                        headers=auth_w)
        assert r.status_code == 201, r.text
        post_id = r.json()["id"]

        def in_feed() -> bool:
            feed = site_b.get("/api/v1/timelines/home", headers=auth_r)
            assert feed.status_code == 200, feed.text
            return post_id in json.dumps(feed.json())

        wait_for("the post in the follower's home feed (fan-out worker)", in_feed, 30)
        assert site_a.get("/").status_code < 500            # the web UI (app/web) answers


def test_a_mastodon_app_over_https_through_both_sites(first_up: dict[str, Any],
                                                     spec: ClusterSpec, ca: str,
                                                     tmp_path: Path) -> None:
    """Issue 23 on the lab: Mastodon.py, as a phone app would, over HTTPS through the sites'
    virtual IPs (the lab CA verified, nothing trusted blindly): each user registers an app and
    authorizes it by code on their own site; bob (site b) follows alice (site a) and streams
    his home timeline (server-sent events through HAProxy); alice's post with an image reaches
    his stream and his home, its image is served over HTTPS; his favourite notifies her; her
    delete reaches his stream."""
    import random

    from freehold.loadgen.payloads import tiny_png
    from tests.mastoclient import client_for, signup

    site_a, site_b = f"https://{vip(spec, 'a')}", f"https://{vip(spec, 'b')}"
    alice, bob = signup(site_a, "lm", ca), signup(site_b, "lm", ca)
    a, b = client_for(site_a, alice, ca), client_for(site_b, bob, ca)
    assert a.account_verify_credentials().username == alice["name"]
    assert b.instance_v2()["configuration"]["urls"]["streaming"] == f"wss://{vip(spec, 'b')}"
    b.account_follow(alice["account"]["id"])

    updates: dict[str, Any] = {}
    deleted: list[str] = []

    class Listener(StreamListener):  # type: ignore[misc]
        def on_update(self, status: Any) -> None:
            updates[str(status["id"])] = status

        def on_delete(self, status_id: Any) -> None:
            deleted.append(str(status_id))

    handle = b.stream_user(Listener(), run_async=True, reconnect_async=False)
    try:
        wait_for("bob's stream open through site b", handle.is_receiving, 30)
        image = tmp_path / "dot.png"
        image.write_bytes(tiny_png(random.Random(23)))
        media = a.media_post(str(image), mime_type="image/png", description="a dot")
        post = a.status_post("over https, from site a", media_ids=[media])
        sid = str(post["id"])
        got = wait_for("alice's post on bob's stream", lambda: updates.get(sid), 15)
        assert got["media_attachments"][0]["url"].startswith("https://")
        assert sid in [str(s["id"]) for s in b.timeline_home(limit=5)]
        with client(site_b, ca) as web:
            pic = web.get(got["media_attachments"][0]["url"])
            assert pic.status_code == 200 and pic.content == image.read_bytes()
        b.status_favourite(post["id"])
        wait_for("bob's favourite in alice's notifications",
                 lambda: any(n["type"] == "favourite" for n in a.notifications()), 30)
        a.status_delete(post["id"])
        wait_for("the delete on bob's stream", lambda: sid in deleted, 15)
    finally:
        handle.close()


def test_web_ui_loads_in_headless_chromium_through_the_vip(first_up: dict[str, Any],
                                                           spec: ClusterSpec,
                                                           tmp_path: Path) -> None:
    from tests.browser import launch

    base = f"https://{vip(spec, 'b')}"
    with sync_api.sync_playwright() as pw:
        # the lab's self-signed certificate is checked by the httpx tests (verify=ca)
        ctx = launch(pw, tmp_path / "chromium-profile", ignore_https_errors=True)
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=login]", first_up["admin"]["username"])
            page.fill("input[name=password]", first_up["admin"]["password"])
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url(f"{base}/")
            sync_api.expect(page.locator("form[action='/logout']")).to_be_visible()
            sync_api.expect(page.locator("#compose")).to_be_visible()
        finally:
            ctx.close()


# ---- rolling deploy and rollback ----------------------------------------------------------

def test_rolling_deploy_under_steady_load_fails_no_request(
        first_up: dict[str, Any], main_lab: Any, spec: ClusterSpec, ca: str,
        env: dict[str, str], secrets_path: Path) -> None:
    from freehold.deploy.provision.probe import SteadyLoad

    before = {s.name: running_release(main_lab, s.name) for s in spec.servers_with_role("app")}
    label = f"rolling-{uuid.uuid4().hex[:6]}"
    with SteadyLoad(f"https://{vip(spec, 'a')}", ca, threads=3) as load_a, \
            SteadyLoad(f"https://{vip(spec, 'b')}", ca, threads=1) as load_b:
        time.sleep(2)
        code, doc = freehold(["deploy", str(LAB_SPEC), "--roles", "app", "--yes", "--json",
                              "--secrets", str(secrets_path)],
                             {**env, "FREEHOLD_RELEASE_LABEL": label}, timeout=1200)
        time.sleep(2)
    assert code == 0 and doc["ok"], doc
    after = {s.name: running_release(main_lab, s.name) for s in spec.servers_with_role("app")}
    assert all(after[h] and after[h] != before[h] for h in after), (before, after)
    assert len(set(after.values())) == 1
    total = load_a.stats.requests + load_b.stats.requests
    assert total > 50, (load_a.stats.to_doc(), load_b.stats.to_doc())
    assert load_a.stats.failures == 0 and load_b.stats.failures == 0, (
        load_a.stats.to_doc(), load_b.stats.to_doc())


def test_rollback_returns_every_app_server_to_the_previous_release(
        first_up: dict[str, Any], main_lab: Any, spec: ClusterSpec, env: dict[str, str]
        ) -> None:
    expected = {s.name: release_status(main_lab, s.name)["previous"]
                for s in spec.servers_with_role("app")}
    code, doc = freehold(["rollback", str(LAB_SPEC), "--yes", "--json"], env, timeout=900)
    assert code == 0 and doc["ok"], doc
    for host, rid in expected.items():
        assert rid and running_release(main_lab, host) == rid, (host, rid)
        assert release_status(main_lab, host)["current"] == rid
    # worker-only servers run what the app servers run (the rolled-back release never
    # reached them: `--roles app`), so nothing there moved to an older release
    for server in spec.servers_with_role("worker"):
        if not server.has("app"):
            assert release_status(main_lab, server.name)["current"] in expected.values()


# ---- failures -------------------------------------------------------------------------------

def vip_holder(lab: Any, spec: ClusterSpec, site: str) -> str | None:
    address = vip(spec, site)
    for s in spec.servers_with_role("lb"):
        if s.site != site:
            continue
        r = lab.run(s.name, f"ip -o -4 addr show | grep -q ' {address}/' && echo yes",
                    timeout=20)
        if r.stdout.strip() == "yes":
            return s.name
    return None


def restore(lab: Any, host: str, spec: ClusterSpec) -> None:
    """Start a killed server again and wait until its app (if any) is ready again."""
    lab.start(host, timeout=120)
    server = spec.server(host)

    def ready() -> bool:
        checks = ["systemctl is-active --quiet haproxy keepalived" if server.has("lb") else
                  "true"]
        if server.has("app"):
            checks.append(f"curl -fsS -o /dev/null http://{server.mesh_address}:8000/readyz")
        return lab.run(host, " && ".join(checks), timeout=20).returncode == 0

    wait_for(f"{host} serving again", ready, 120, every=2)


def test_vip_moves_when_its_holder_dies(first_up: dict[str, Any], main_lab: Any,
                                        spec: ClusterSpec, ca: str) -> None:
    from freehold.deploy.provision.probe import first_success

    # the drill kills the serving-only balancer a3 (a2 also routes the database): move the
    # address there first (nopreempt: it stays where it is until its holder fails)
    if vip_holder(main_lab, spec, "a") != "a3":
        main_lab.run("a2", "systemctl restart keepalived", timeout=30)
    wait_for("a's virtual IP on a3", lambda: vip_holder(main_lab, spec, "a") == "a3", 20)
    base = f"https://{vip(spec, 'a')}"
    assert first_success(base, ca, timeout=10) is not None
    main_lab.kill("a3")
    try:
        took = first_success(base, ca, timeout=30, every=0.1)
        assert took is not None and took <= 10, took
        assert vip_holder(main_lab, spec, "a") == "a2"
    finally:
        restore(main_lab, "a3", spec)


def test_app_server_killed_under_load_fails_only_in_flight_requests(
        first_up: dict[str, Any], main_lab: Any, spec: ClusterSpec, ca: str,
        env: dict[str, str]) -> None:
    from freehold.deploy.provision.probe import SteadyLoad

    threads = 4
    with SteadyLoad(f"https://{vip(spec, 'a')}", ca, threads=threads, pause=0.02) as load:
        time.sleep(3)
        served_before = load.stats.requests
        main_lab.kill("a3")      # a's app server (a2 holds the address now)
        killed_at = time.monotonic()
        time.sleep(12)
    try:
        # `freehold status` reports the dead server while it lasts
        code, doc = freehold(["status", str(LAB_SPEC), "--json"], env, timeout=180)
        assert code == 1 and not doc["ok"], doc.get("problems")
        row = next(s for s in doc["servers"] if s["server"] == "a3")
        assert row["up"] is False, row
        after = [t for t in load.stats.fail_times if t >= killed_at]
        assert served_before > 20 and load.stats.requests > served_before + 20, \
            load.stats.to_doc()
        # at most one request per client connection was in flight on a3
        assert load.stats.failures <= threads and len(after) == load.stats.failures, \
            load.stats.to_doc()
    finally:
        restore(main_lab, "a3", spec)


def test_second_up_changes_nothing(first_up: dict[str, Any], lab_secrets: LabSecrets) -> None:
    code, doc = freehold_up(lab_secrets)
    assert code == 0 and doc["changed"] == 0 and doc["seeded_accounts"] == 0, doc["deploy"]
