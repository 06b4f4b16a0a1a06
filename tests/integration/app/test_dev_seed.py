"""`python -m freehold.app.dev`: migrations of a fresh database, and the whole app with its demo
data (the demo network itself: test_demo.py)."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from freehold.app.db import migrate
from freehold.app.demo.content import ADMIN, PASSWORD
from freehold.app.devstack import Postgres, free_port
from tests.integration.app.conftest import ROOT
from tests.waiting import wait_for


def test_migrations_of_a_fresh_database(pg_server: Postgres) -> None:
    pg_server.psql("CREATE DATABASE freehold_dev_seed")
    dsn = pg_server.dsn_for("freehold_dev_seed")
    assert migrate(dsn) == ["0001_schema", "0002_thread_replies_index", "0003_loadtest_accounts",
                            "0004_mastodon_api", "0005_accounts_by_followers"]
    assert migrate(dsn) == []  # idempotent
    parts = pg_server.psql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'posts'::regclass",
                           database="freehold_dev_seed")
    assert int(parts) >= 5  # monthly partitions + default


def test_dev_command_runs_the_whole_app_and_stops_it(tmp_path: Path) -> None:
    """`python -m freehold.app.dev`: its own PostgreSQL, Redis and SeaweedFS, demo data, the workers
    and the web server; a demo account logs in, a new post fans out to a follower's feed (the
    fan-out worker runs); Ctrl-C (SIGINT) stops every process it started and removes its
    folder."""
    port = free_port()
    log = tmp_path / "dev.log"
    # started with SIGINT ignored, as a background job of a non-interactive shell is (CI runs
    # the suite so): Ctrl-C must stop it all the same
    proc = subprocess.Popen([sys.executable, "-m", "freehold.app.dev", "--port", str(port)],
                            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        ready = wait_for("app.dev to serve", lambda: proc.poll() is not None or re.search(
            r"logs in (\S+);", log.read_text()), timeout=120, every=0.5)
        assert proc.poll() is None, log.read_text()[-2000:]
        root = Path(ready.group(1))
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        web = httpx.get(f"{base}/login", timeout=10)
        assert web.status_code == 200 and "<form" in web.text

        def login(name: str) -> dict[str, str]:
            r = httpx.post(f"{base}/api/v1/auth/login", timeout=10,
                           json={"login": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}

        alice, bob = login("alice"), login("bob")
        # the demo admin's first screen is the demo network (app.demo), not an empty feed
        feed = httpx.get(f"{base}/api/v1/timelines/home", headers=login(ADMIN), timeout=10)
        assert any(p["media"] for p in feed.json()["items"]), feed.text[:500]
        bob_id = httpx.get(f"{base}/api/v1/accounts/me", headers=bob, timeout=10).json()["id"]
        assert httpx.post(f"{base}/api/v1/accounts/{bob_id}/follow", headers=alice,
                          timeout=10).status_code == 200
        post = httpx.post(f"{base}/api/v1/posts", headers=bob, timeout=10,
                          json={"body": "from the dev stack"}).json()["id"]

        def in_feed() -> bool:
            r = httpx.get(f"{base}/api/v1/timelines/home", headers=alice, timeout=10)
            return post in [p["id"] for p in r.json()["items"]]

        wait_for("the post in alice's feed", in_feed, timeout=30, every=0.3)
        started = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert len(started) >= 5  # four workers and the server, at least
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # say what it was doing, not only that
                pytest.fail("python -m freehold.app.dev did not stop within 60 s; its log "
                            f"ends: {log.read_text()[-2000:]}", pytrace=False)
            assert code == 0, log.read_text()[-2000:]
        finally:
            if proc.poll() is None:  # past its bound: what it started goes too, by pid
                kids = psutil.Process(proc.pid).children(recursive=True)
                proc.kill()
                for kid in kids:
                    with contextlib.suppress(psutil.Error):
                        kid.kill()
                proc.wait(timeout=10)
    left = [pid for pid in started if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert left == [], left
    assert not root.exists()  # its PostgreSQL, Redis and SeaweedFS went with it
