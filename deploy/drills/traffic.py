"""Steady writes and reads through every site's virtual IP, as users send them.

Per site: one writer thread per account (posts through POST /api/v1/posts, each at a fixed pace)
and one reader (the home timeline). HTTPS with the certificate checked against the cluster's CA;
every request is bounded (connect and read timeouts) and every thread stops on `stop()` or at
its deadline. Afterwards `verify` reads back every acknowledged post: one missing is a lost
write.
"""

from __future__ import annotations

import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from freehold.deploy.drills.events import NO_ANSWER, Event

TIMEOUT = httpx.Timeout(5.0, connect=2.0)  # a user's client gives up after 5 s
MAX_RUN_S = 900.0  # a traffic thread never outlives this, whatever happens to its caller


class TrafficError(Exception):
    """The drill's traffic could not start (a site's VIP refused the accounts' log-in)."""


@dataclass(frozen=True)
class Account:
    username: str
    password: str


def tls(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else \
        ssl.create_default_context()


LOGIN_TIMEOUT = httpx.Timeout(30.0, connect=5.0)  # once per suite; argon2 on a busy lab is slow


def login(base: str, account: Account, ctx: ssl.SSLContext, limit_s: float = 330.0) -> str:
    """A bearer token (retried while the site is not ready, bounded)."""
    deadline = time.monotonic() + limit_s
    last = ""
    with httpx.Client(verify=ctx, timeout=LOGIN_TIMEOUT) as client:
        while time.monotonic() < deadline:
            try:
                r = client.post(f"{base}/api/v1/auth/login",
                                json={"login": account.username, "password": account.password})
                if r.status_code == 200:
                    return str(r.json()["token"])
                last = f"answered {r.status_code}: {r.text[:120]}"
                if r.status_code in (400, 401, 403, 422):
                    break
                if r.status_code == 429:  # log-ins are limited per account: wait it out
                    wait = float(r.headers.get("retry-after", "10") or 10)
                    time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
                    continue
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(2)
    raise TrafficError(f"{base}: logging in as {account.username} {last}")


class RequestThreads:
    """Threads that each record one Event per request until `stop` (which joins them and
    returns every Event, oldest first)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def stop(self) -> list[Event]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)
        with self._lock:
            return sorted(self.events, key=lambda e: e.t0)


class Traffic(RequestThreads):
    """Writers and readers on every site's virtual IP, recording one Event per request."""

    def __init__(self, vips: dict[str, str], tokens: dict[str, list[str]], ca_file: str | None,
                 label: str, write_every: float = 0.66, read_every: float = 0.33) -> None:
        super().__init__()
        self.vips, self.tokens, self.label = vips, tokens, label
        self.ctx = tls(ca_file)
        self.write_every, self.read_every = write_every, read_every
        self._n = 0

    def start(self) -> None:
        deadline = time.monotonic() + MAX_RUN_S
        for site in sorted(self.vips):
            for token in self.tokens[site]:
                self._threads.append(threading.Thread(
                    target=self._loop, args=(site, "write", token, self.write_every, deadline),
                    daemon=True, name=f"drill-write-{site}"))
            self._threads.append(threading.Thread(
                target=self._loop, args=(site, "read", self.tokens[site][0], self.read_every,
                                         deadline), daemon=True, name=f"drill-read-{site}"))
        for t in self._threads:
            t.start()

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def _body(self, site: str) -> str:
        with self._lock:
            self._n += 1
            return f"drill {self.label} site {site} #{self._n}"

    def _loop(self, site: str, kind: str, token: str, every: float, deadline: float) -> None:
        base = f"https://{self.vips[site]}"
        headers = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(verify=self.ctx, timeout=TIMEOUT, headers=headers)
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                due = time.monotonic() + every
                t0 = time.time()
                status, post_id, retry_after = NO_ANSWER, None, False
                try:
                    if kind == "write":
                        r = client.post(f"{base}/api/v1/posts", json={"body": self._body(site)})
                    else:
                        r = client.get(f"{base}/api/v1/timelines/home", params={"limit": 5})
                    status = r.status_code
                    retry_after = "retry-after" in r.headers
                    if kind == "write" and status == 201:
                        post_id = str(r.json()["id"])
                except (httpx.HTTPError, ValueError, KeyError):
                    # no answer: the next request opens a new connection (a dead VIP holder's
                    # connections never answer again)
                    client.close()
                    client = httpx.Client(verify=self.ctx, timeout=TIMEOUT, headers=headers)
                with self._lock:
                    self.events.append(Event(t0, time.time(), site, kind, status, post_id,
                                             retry_after))
                self._stop.wait(max(0.0, due - time.monotonic()))
        finally:
            client.close()


def verify(base: str, token: str, ca_file: str | None, post_ids: list[str],
           limit_s: float = 180.0) -> tuple[list[str], list[str]]:
    """(missing, unchecked): acknowledged posts that read back 404, and those that could not be
    read within `limit_s` (the site still failing). Four readers at a time."""
    ctx = tls(ca_file)
    deadline = time.monotonic() + limit_s
    missing: list[str] = []
    unchecked: list[str] = []
    lock = threading.Lock()

    def check(client: httpx.Client, pid: str) -> None:
        while time.monotonic() < deadline:
            try:
                r = client.get(f"{base}/api/v1/posts/{pid}")
            except httpx.HTTPError:
                time.sleep(1)
                continue
            if r.status_code == 200:
                return
            if r.status_code == 404:
                with lock:
                    missing.append(pid)
                return
            time.sleep(1)
        with lock:
            unchecked.append(pid)

    chunks = [post_ids[i::4] for i in range(4)]

    def run(chunk: list[str]) -> None:
        with httpx.Client(verify=ctx, timeout=TIMEOUT,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            for pid in chunk:
                check(client, pid)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, chunks))
    return sorted(missing), sorted(unchecked)
