"""Did every follower get every post? The drill's own followers of the writing accounts, and
the check that each one's home feed holds every acknowledged post once the fault is restored.

Fan-out (app/worker/fanout.py) LPUSHes a new post's id onto the cached feeds of its author's
followers; a feed missing from Redis is rebuilt from PostgreSQL when read, which would hide a
post the workers never pushed. So each follower's feed is read once just before the drill's
traffic (cached), and the posts can then only reach it by fan-out.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from freehold.deploy.drills.accounts import DrillAccount, account_id, write
from freehold.deploy.drills.traffic import TIMEOUT, TrafficError

FOLLOWERS = 3
PAGE = 100  # the app's feed_page_max
# Feeds keep the newest 800 ids (feed_cap): at most this many of the newest acknowledged posts
# are looked for, so a long drill's oldest posts trimmed from the feed are not counted as missed
FEED_WINDOW = 700
MAX_PAGES = FEED_WINDOW // PAGE + 2


@dataclass(frozen=True)
class FollowerCheck:
    """The followers' feeds after the drill: posts missing per follower, followers whose feed
    could not be read within the bound."""

    followers: int
    posts: int  # acknowledged posts looked for (the newest FEED_WINDOW)
    acknowledged: int
    missing: dict[str, int] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.followers > 0 and not self.missing and not self.unread

    def summary(self) -> str:
        if self.ok:
            return f"{self.followers} followers each had all {self.posts} posts"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} of {self.followers} followers missed posts "
                         f"({sum(self.missing.values())} missing of {self.posts} looked for in "
                         "each feed)")
        if self.unread:
            parts.append(f"{len(self.unread)} followers' feeds could not be read")
        return "; ".join(parts) or "no followers"

    def to_doc(self) -> dict[str, Any]:
        return {"ok": self.ok, "followers": self.followers, "posts_checked": self.posts,
                "acknowledged": self.acknowledged, "missing": self.missing,
                "unread": self.unread, "seconds": round(self.seconds, 1),
                "summary": self.summary()}


@dataclass
class Followers:
    """Drill accounts following every writing account of the drill."""

    accounts: list[DrillAccount]
    followed: list[str]

    @classmethod
    def create(cls, base: str, verify: ssl.SSLContext | bool, accounts: list[DrillAccount],
               writer_tokens: list[str]) -> Followers:
        with httpx.Client(verify=verify, timeout=TIMEOUT) as client:
            ids = sorted({account_id(client, base, t) for t in writer_tokens})
            for a in accounts:
                for w in ids:
                    write(client, "POST", f"{base}/api/v1/accounts/{w}/follow", a.headers,
                          f"{base}: {a.username} following account {w}")
        return cls(accounts, ids)

    def warm(self, base: str, verify: ssl.SSLContext | bool, limit_s: float = 60.0) -> None:
        """Each follower's home feed read once (cached in Redis from now on)."""
        with httpx.Client(verify=verify, timeout=TIMEOUT) as client:
            for a in self.accounts:
                deadline = time.monotonic() + limit_s
                while home_page(client, base, a, None) is None:
                    if time.monotonic() > deadline:
                        raise TrafficError(f"{base}: {a.username}'s home feed does not answer "
                                           f"({limit_s:.0f} s)")
                    time.sleep(1)


def home_page(client: httpx.Client, base: str, account: DrillAccount, cursor: str | None
              ) -> tuple[list[str], str | None] | None:
    """(post ids, next cursor) of one page of the home feed; None when it did not answer 200."""
    params: dict[str, Any] = {"limit": PAGE}
    if cursor:
        params["cursor"] = cursor
    try:
        r = client.get(f"{base}/api/v1/timelines/home", params=params, headers=account.headers)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    doc = r.json()
    return [str(p["id"]) for p in doc.get("items", [])], doc.get("next_cursor")


def feed_ids(client: httpx.Client, base: str, account: DrillAccount, oldest: int
             ) -> set[str] | None:
    """The ids of the home feed down to `oldest` (ids are time-ordered), at most MAX_PAGES
    pages; None when a page did not answer."""
    got: set[str] = set()
    cursor = None
    for _ in range(MAX_PAGES):
        page = home_page(client, base, account, cursor)
        if page is None:
            return None
        ids, cursor = page
        got.update(ids)
        if not ids or not cursor or min(int(i) for i in ids) <= oldest:
            break
    return got


def missed(base: str, verify: ssl.SSLContext | bool, followers: Followers, post_ids: list[str],
           limit_s: float = 120.0, every: float = 3.0) -> FollowerCheck:
    """Polls (bounded) each follower's home feed until it holds every acknowledged post (the
    newest FEED_WINDOW of them); what is still missing at the bound was missed."""
    started = time.monotonic()
    wanted = sorted(set(post_ids), key=int)[-FEED_WINDOW:]
    pending: dict[str, set[str]] = {a.username: set(wanted) for a in followers.accounts}
    unread: set[str] = set()
    deadline = started + limit_s
    with httpx.Client(verify=verify, timeout=TIMEOUT) as client:
        while True:
            unread.clear()
            for a in followers.accounts:
                if not pending[a.username]:
                    continue
                got = feed_ids(client, base, a, int(min(pending[a.username], key=int)))
                if got is None:
                    unread.add(a.username)
                    continue
                pending[a.username] -= got
            if not any(pending.values()) or time.monotonic() + every > deadline:
                break
            time.sleep(every)
    return FollowerCheck(len(followers.accounts), len(wanted), len(post_ids),
                         {u: len(s) for u, s in sorted(pending.items())
                          if s and u not in unread},
                         sorted(unread), time.monotonic() - started)
