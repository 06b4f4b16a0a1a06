"""PostgreSQL or Redis dying under requests: every answer is a success or a 503 with
Retry-After (the API's JSON error shape, the web UI's error page), never a 500.

The app here has a PostgreSQL and a Redis of its own (not the shared servers of the other app
tests), killed and started again by their process ids while threads send requests over API and
web routes, reads and writes."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from freehold.app.api.deps import SESSION_COOKIE
from freehold.app.db import migrate
from freehold.app.devstack import Postgres, Redis
from freehold.app.main import create_app
from freehold.app.settings import Settings
from freehold.app.web.session import CSRF_COOKIE
from tests.integration.app.conftest import User, new_user, wait_for
from tests.integration.app.test_social_misc import metric_samples

CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Stack:
    pg: Postgres
    redis: Redis
    client: TestClient


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pg = Postgres(Path(tmp_path_factory.mktemp("pg-own"))).start()
    rd: Redis | None = None
    try:
        rd = Redis(Path(tmp_path_factory.mktemp("redis-own"))).start()
        migrate(pg.dsn)
        settings = Settings(
            database_url=pg.dsn, redis_url=rd.url, s3_endpoint="", db_pool_min=1,
            db_pool_max=8, redis_pool_max=16, rl_signup_per_ip=1_000_000,
            rl_login_per_ip=1_000_000, rl_login_per_account=1_000_000,
            rl_write_per_account=1_000_000, rl_write_per_ip=1_000_000,
            signup_pow_max_bits=0, secret_key=secrets.token_urlsafe(32),
            # a dead server outlasts any retry: each request waits 1 s (app.dbretry), then 503
            db_retry_s=1.0)
        # a 500 comes back as an answer (as a user sees it), not as the test's exception
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield Stack(pg, rd, client)
    finally:
        if rd is not None:
            rd.stop()
        pg.stop()


Call = tuple[str, str, dict[str, Any]]  # method, url, httpx arguments


def routes(client: TestClient) -> dict[str, Callable[[], Call]]:
    """Name -> a request to send (made fresh per call: new names for sign-ups); every one of
    them succeeds (2xx, or a web form's 303) when both stores are up."""
    author, reader = new_user(client, "ua"), new_user(client, "ur")
    assert client.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.h).is_success
    post = client.post("/api/v1/posts", headers=author.h, json={"body": "hello #outage"}).json()
    web = web_cookies(client, reader)
    csrf = CSRF_RE.search(send(client, ("GET", "/compose", {"cookies": web})).text)
    assert csrf, "no csrf field on /compose"
    form = {"csrf": csrf.group(1)}

    def api(method: str, url: str, user: User | None = reader, **kw: Any) -> Callable[[], Call]:
        return lambda: (method, url, {"headers": user.h if user else {}, **kw})

    def page(method: str, url: str, **kw: Any) -> Callable[[], Call]:
        return lambda: (method, url, {"cookies": web, **kw})

    def signup() -> Call:
        name = f"us_{secrets.token_hex(5)}"
        return ("POST", "/api/v1/accounts", {"json": {
            "username": name, "email": f"{name}@example.org", "password": "correct horse 1"}})

    pid, aid = post["id"], author.id
    return {
        "api home feed": api("GET", "/api/v1/timelines/home"),
        "api me": api("GET", "/api/v1/accounts/me"),
        "api post": api("GET", f"/api/v1/posts/{pid}"),
        "api thread": api("GET", f"/api/v1/posts/{pid}/thread"),
        "api account posts": api("GET", f"/api/v1/accounts/{aid}/posts"),
        "api tag posts": api("GET", "/api/v1/tags/outage/posts"),
        "api discover": api("GET", "/api/v1/discover/latest"),
        "api search": api("GET", "/api/v1/search/accounts", params={"q": "ua_"}),
        "api notifications": api("GET", "/api/v1/notifications"),
        "api write post": api("POST", "/api/v1/posts", json={"body": "written in an outage"}),
        "api reply": api("POST", "/api/v1/posts", json={"body": "re", "in_reply_to": pid}),
        "api upvote": api("POST", f"/api/v1/posts/{pid}/upvote"),
        "api follow": api("POST", f"/api/v1/accounts/{aid}/follow"),
        "api edit profile": api("PATCH", "/api/v1/accounts/me", json={"bio": "still here"}),
        "api login": api("POST", "/api/v1/auth/login", user=None,
                         json={"login": reader.username, "password": reader.password}),
        "api sign-up": signup,
        "web home": page("GET", "/"),
        "web post": page("GET", f"/p/{pid}"),
        "web profile": page("GET", f"/u/{author.username}"),
        "web discover": page("GET", "/discover"),
        "web notifications": page("GET", "/notifications"),
        "web compose": page("POST", "/compose", data={**form, "body": "from the web"}),
        "web upvote": page("POST", f"/p/{pid}/upvote", data=form),
        "web login": page("POST", "/login", data={**form, "login": reader.username,
                                                    "password": reader.password}),
    }


def web_cookies(client: TestClient, user: User) -> dict[str, str]:
    """A browser's cookies: the user's session and a CSRF cookie of its own."""
    return {SESSION_COOKIE: user.token, CSRF_COOKIE: secrets.token_urlsafe(24)}


def send(client: TestClient, call: Call) -> httpx.Response:
    method, url, kw = call
    cookies = kw.pop("cookies", None)
    headers = dict(kw.pop("headers", {}))
    if cookies:  # a header of the request's own: the shared client's jar stays out of it
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return client.request(method, url, headers=headers, follow_redirects=False, **kw)


def ok(r: httpx.Response) -> bool:
    return r.is_success or r.status_code == 303


def verdict(name: str, r: httpx.Response) -> str | None:
    """None for an answer a user may get in an outage; else what is wrong with it."""
    if ok(r):
        return None
    if r.status_code != 503:
        return f"{name}: {r.status_code} {r.text[:200]!r}"
    if not r.headers.get("retry-after", "").isdigit():
        return f"{name}: 503 without Retry-After"
    if name.startswith("api"):
        doc = r.json()
        if doc.get("error") != "unavailable" or not doc.get("message"):
            return f"{name}: 503 body {doc}"
    elif not r.headers["content-type"].startswith("text/html") or "Back in a moment" not in \
            r.text:
        return f"{name}: 503 is not the error page: {r.text[:200]!r}"
    return None


def sweep(client: TestClient, calls: dict[str, Callable[[], Call]]
          ) -> list[tuple[str, httpx.Response]]:
    return [(name, send(client, make())) for name, make in calls.items()]


class Load:
    """Threads sending the routes' requests in turn until stopped; every answer kept."""

    def __init__(self, client: TestClient, calls: dict[str, Callable[[], Call]],
                 threads: int = 4) -> None:
        self.client, self.calls = client, calls
        self.answers: list[tuple[str, httpx.Response]] = []
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                        for k in range(threads)]

    def _run(self, k: int) -> None:
        names = list(self.calls)
        i = k
        while not self.stopped.is_set():
            name = names[i % len(names)]
            self.answers.append((name, send(self.client, self.calls[name]())))
            i += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=60)


def unavailable_count(client: TestClient, store: str) -> float:
    samples = metric_samples(client.get("/metrics").text)
    return sum(v for labels, v in samples.get("freehold_store_unavailable_total", [])
               if labels.get("store") == store)


def check_outage(stack: Stack, store: str, kill: Callable[[], None],
                 revive: Callable[[], None], unread: str) -> None:
    """Requests over the routes while `kill` and `revive` run; `unread`: a live metric the
    store's loss makes unreadable (still scraped, as a failed reading)."""
    client = stack.client
    calls = routes(client)
    for name, r in sweep(client, calls):
        assert ok(r), (name, r.status_code, r.text[:300])
    before = unavailable_count(client, store)
    with Load(client, calls) as load:
        time.sleep(0.5)
        kill()
        # requests against the dead server: two rounds of the routes (the machine may be slow)
        after_kill = len(load.answers)
        wait_for(lambda: len(load.answers) >= after_kill + 2 * len(calls), timeout=60)
        scraped = client.get("/metrics")
        assert scraped.status_code == 200, scraped.text[:300]
        read_ok = {lb["metric"]: v for lb, v in
                   metric_samples(scraped.text)["freehold_metric_read_ok"]}
        assert read_ok[unread] == 0.0, read_ok
        revive()
        # back: a whole sweep succeeds again (pools and clients reconnect by themselves)
        wait_for(lambda: all(ok(r) for _, r in sweep(client, calls)), timeout=30, every=0.2)
        time.sleep(0.3)
    answers = load.answers
    wrong = [v for name, r in answers if (v := verdict(name, r)) is not None]
    assert not wrong, f"{len(wrong)} of {len(answers)} answers wrong: {wrong[:10]}"
    unavailable = [name for name, r in answers if r.status_code == 503]
    print(f"{store} outage: {len(answers)} answers, {len(unavailable)} of them 503")
    assert unavailable, f"no 503 in {len(answers)} answers: the outage was not met"
    assert {n.split()[0] for n in unavailable} == {"api", "web"}, unavailable
    assert unavailable_count(client, store) >= before + len(unavailable)


def test_postgres_killed_under_requests(stack: Stack) -> None:
    pg = stack.pg

    def kill() -> None:
        # the app's sessions cut first (as a failover does), then the server stopped by its pid
        for _ in range(3):
            pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
            time.sleep(0.2)
        pg.stop()

    check_outage(stack, "postgres", kill, pg.restart, unread="moderation_queue")


def test_redis_killed_under_requests(stack: Stack) -> None:
    rd = stack.redis
    check_outage(stack, "redis", rd.stop, rd.start, unread="fanout_lag")
