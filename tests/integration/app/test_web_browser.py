"""The web UI in a real browser: Debian's Chromium driven by Playwright, against the app served
by uvicorn on 127.0.0.1 (a process this test starts and stops by pid) with the real workers.

Two people sign up, one posts, the other follows, sees the post in the home feed and reports it
for incitement; an admin grants a third person the juror role, the juror votes "remove" and the
post is hidden. A phone-sized screenshot is saved under the test's tmp dir.
"""

from __future__ import annotations

import os
import secrets
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api  # required: a missing Playwright fails, never skips
from starlette.testclient import TestClient

from freehold.app.devstack import free_port
from freehold.app.settings import Settings
from tests.browser import launch
from tests.integration.app.conftest import ROOT, make_admin, stop_process, wait_for

PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def served_app(app_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """uvicorn serving the app (one decisive juror vote) on a free loopback port."""
    with serving(app_settings.replace(jury_votes=1), tmp_path) as base:
        yield base


@contextmanager
def serving(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """uvicorn serving the app with `settings` on a free loopback port: its base URL."""
    port = free_port()
    env = {**os.environ, **settings.to_env()}
    log = (tmp_path / "uvicorn.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "freehold.app.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited: {(tmp_path / 'uvicorn.log').read_text()}")
        try:
            return httpx.get(f"{base}/readyz", timeout=15).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=300, every=0.5)  # generous: the CI machine may be busy
        yield base
    finally:
        stop_process(proc)
        log.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # type: ignore[return-value]


def signup(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/signup")
    page.fill("input[name=username]", username)
    page.fill("input[name=display_name]", username.split("_")[0].title())
    page.fill("input[name=email]", f"{username}@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/signup'] button[type=submit]")
    page.wait_for_url(f"{base}/")


def login(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{base}/")


def logout(page: Any, base: str) -> None:
    page.click("form[action='/logout'] button")
    page.wait_for_url(f"{base}/login")


def test_signup_post_follow_report_jury_hides(served_app: str, client: TestClient,
                                              workers: object, tmp_path: Path) -> None:
    base = served_app
    admin = make_admin(client)
    tag = secrets.token_hex(3)
    alice, bob, carol = (f"{n}_{tag}" for n in ("alice", "bob", "carol"))
    text = f"Town hall tonight, bring questions #freehold x{tag}"
    expect = sync_api.expect
    with sync_api.sync_playwright() as pw:
        ctx = launch(pw, tmp_path / "chromium-profile", viewport=PHONE, device_scale_factor=2,
                     is_mobile=True, has_touch=True)
        try:
            expect.set_options(timeout=120_000)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()

            # alice signs up and posts
            signup(page, base, alice)
            page.fill("#body-new", text)
            expect(page.locator("#compose .count")).to_have_text(str(1000 - len(text)))
            page.click("#compose button[type=submit]")
            post = page.locator("article.post", has_text=text).first
            expect(post).to_be_visible()
            pid = (post.get_attribute("id") or "")[1:]
            assert pid.isdigit()
            # the installable shell: a service worker controls the root scope
            scope = page.evaluate("""() => Promise.race([
                navigator.serviceWorker.ready.then(r => r.scope),
                new Promise(r => setTimeout(() => r('timeout'), 20000))])""")
            assert scope == f"{base}/"
            logout(page, base)

            # bob signs up, follows alice and sees her post in his home feed
            signup(page, base, bob)
            page.goto(f"{base}/u/{alice}")
            page.click(f"form[action='/u/{alice}/follow'] button")
            expect(page.locator(f"form[action='/u/{alice}/unfollow'] button")).to_be_visible()
            page.goto(f"{base}/")
            expect(page.locator(f"#p{pid}")).to_contain_text(text)
            shot = tmp_path / "feed-phone.png"
            page.screenshot(path=str(shot), full_page=False)
            assert png_size(shot) == (PHONE["width"] * 2, PHONE["height"] * 2)

            # bob reports it for incitement to violence
            page.click(f"#p{pid} a[href='/report?post={pid}']")
            page.check("input[name=reason][value=incitement]")
            page.fill("textarea[name=note]", "calls for violence")
            page.click("form[action='/report'] button[type=submit]")
            expect(page.locator("main")).to_contain_text("in the jury queue")
            logout(page, base)

            # carol signs up; an admin makes her a juror
            signup(page, base, carol)
            expect(page.locator("nav a[href='/jury']")).to_have_count(0)
            logout(page, base)
            login(page, base, admin.username, admin.password)
            page.goto(f"{base}/admin")
            assert int(page.inner_text("#queue-size")) >= 1
            page.fill("form[action='/admin/flag'] input[name=username]", carol)
            page.select_option("form[action='/admin/flag'] select[name=flag]", "juror")
            page.click("form[action='/admin/flag'] button[type=submit]")
            expect(page.locator("main")).to_contain_text(f"juror granted to @{carol}")
            logout(page, base)

            # the juror votes to remove; the post is hidden
            login(page, base, carol)
            page.click("nav a[href='/jury']")
            case = page.locator("article.case", has_text=text).first
            expect(case).to_contain_text("Incitement to violence")
            case.locator("button", has_text="Remove").click()
            page.wait_for_url(f"{base}/jury?voted=removed")
            resp = page.goto(f"{base}/p/{pid}")
            assert resp is not None and resp.status == 404
            logout(page, base)
            login(page, base, bob)
            expect(page.locator("main")).not_to_contain_text(text)
            expect(page.locator(f"#p{pid}")).to_have_count(0)
        finally:
            ctx.close()


def test_phone_nav_shows_every_entry(served_app: str, client: TestClient,
                                     tmp_path: Path) -> None:
    """On a 390x844 phone every entry of the top navigation (an admin and juror sees all nine)
    lies inside the viewport, nothing scrolls sideways, and each is a 44x44 px tap target."""
    base = served_app
    admin = make_admin(client)
    r = client.put(f"/api/v1/admin/accounts/{admin.id}/juror", json={"value": True},
                   headers=admin.h)
    assert r.status_code == 200, r.text
    with sync_api.sync_playwright() as pw:
        ctx = launch(pw, tmp_path / "chromium-profile", viewport=PHONE, device_scale_factor=2,
                     is_mobile=True, has_touch=True)
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            login(page, base, admin.username, admin.password)
            entries = page.locator("nav.nav a, nav.nav button")
            names = [n.strip() for n in entries.all_inner_texts()]
            assert names == ["Home", "Discover", "Search", "Notifications", "Profile", "Jury",
                             "Admin", "Settings", "Log out"], names
            for i, name in enumerate(names):
                entry = entries.nth(i)
                box = entry.bounding_box()
                assert box is not None and entry.is_visible(), name
                assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
                assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (name, box)
                assert box["width"] >= 44 and box["height"] >= 44, (name, box)
                # not covered or clipped by a scrolling container: the entry is what a tap hits
                hit = page.evaluate(
                    "([x, y]) => document.elementFromPoint(x, y)?.closest('a, button')"
                    "?.textContent.trim()", [box["x"] + box["width"] / 2,
                                             box["y"] + box["height"] / 2])
                assert hit == name, (name, hit)
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.screenshot(path=str(tmp_path / "nav-phone.png"))
            # the last entry works
            page.click("nav.nav button", timeout=10_000)
            page.wait_for_url(f"{base}/login")
        finally:
            ctx.close()
