"""Locust users that behave like the app's users (FastHttpUser, one action per think time).

Each simulated user acts as one seeded account (session token from the roster) and repeats: pause
for a think time (the profile's min..max, scaled by the plan), then one action drawn from the
profile's mix — read the home feed (most), open a thread, view a profile, discover, search, read
notifications, post, reply, echo, upvote, follow, report, log in, upload an image, and in a
sign-up flood sign up (the user then *is* that newcomer and follows popular accounts).

Skew: profiles, follows and searches pick from the roster's accounts ranked by followers, threads
from the posts the user just saw in its feed or from the roster's posts ranked by engagement, all
with Zipf(s) from the profile — a few accounts and posts draw most reads.

The plan (JSON, path in FREEHOLD_LT_PLAN) gives the mix, think times and the roster; the master
tells the workers which step is running (message `freehold_step`), so a step's mix (sign-ups)
reaches every worker. Without a plan, the profile's mix and `loadgen/data/roster.json` are used.
"""

from __future__ import annotations

import gc
import os
import random
import secrets
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser

from freehold.loadgen.payloads import REPORT_REASONS, TAGS, WORDS, tiny_png
from freehold.loadgen.picks import Zipf, first_pause, weighted_choice
from freehold.loadgen.roster import Roster
from freehold.loadgen.shapes import LoadPlan

API = "/api/v1"
HERE = Path(__file__).resolve().parent


def _load_plan() -> LoadPlan | None:
    path = os.environ.get("FREEHOLD_LT_PLAN")
    return LoadPlan.load(path) if path else None


def _default_plan() -> LoadPlan:
    from freehold.loadgen.traffic import load_model

    m = load_model(os.environ.get("FREEHOLD_LT_PROFILE") or None)
    return LoadPlan(shape="adhoc", host="", steps=[], weights=m.weights(),
                think_min_s=m.think_min_s.value, think_max_s=m.think_max_s.value,
                think_scale=1.0, zipf_s=m.zipf_s.value, scale=None,
                roster=str(HERE / "data" / "roster.json"))


PLAN: LoadPlan = _load_plan() or _default_plan()
ROSTER: Roster = Roster.load(PLAN.roster)
STATE: dict[str, Any] = {"step": 0}
# Zipf tables shared by every user of this process (each user draws with its own rng)
POPULAR = Zipf(ROSTER.popular, PLAN.zipf_s)
HOT_POSTS = Zipf(ROSTER.posts, PLAN.zipf_s) if ROSTER.posts else None
HOT_TAGS = Zipf(ROSTER.tags or TAGS, PLAN.zipf_s)


def current_weights() -> dict[str, float]:
    i = STATE["step"]
    if 0 <= i < len(PLAN.steps) and PLAN.steps[i].weights:
        return PLAN.steps[i].weights  # type: ignore[return-value]
    return PLAN.weights


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    from locust.runners import WorkerRunner

    # The generator's own garbage collections stall every request it has in flight, and the
    # stall is counted as the app's latency: full collections of Locust's startup heap took
    # 40-67 ms in a calibration run. That heap is moved out of the collector's view.
    gc.collect()
    gc.freeze()

    if isinstance(environment.runner, WorkerRunner):
        def on_step(environment: Any, msg: Any, **__: Any) -> None:
            STATE["step"] = int(msg.data["index"])

        environment.runner.register_message("freehold_step", on_step)


class Member(FastHttpUser):
    """One account of the network, acting through the JSON API."""

    network_timeout = 30.0
    connection_timeout = 10.0
    insecure = True

    def wait_time(self) -> float:
        lo, hi = PLAN.think_min_s, PLAN.think_max_s
        return self.rng.uniform(lo, hi) * PLAN.think_scale

    def on_start(self) -> None:
        self.rng = random.Random(secrets.randbits(64))
        self.account_id, self.username, token = self.rng.choice(ROSTER.members)
        self.headers = {"Authorization": f"Bearer {token}"}
        # each simulated user comes from its own address, as real users do: the app trusts
        # X-Forwarded-For from its proxy (loopback locally), so per-IP limits apply per user
        self.address = f"10.{self.rng.randrange(64, 128)}.{self.rng.randrange(256)}." \
            f"{self.rng.randrange(1, 255)}"
        self.seen: deque[str] = deque(maxlen=60)
        # users spawned together would otherwise all act at once (Locust runs the first task at
        # spawn): a step's new users arrive at the steady rate, not as a burst that queues up
        # the measured window (the CI's surge once failed its first step on that burst alone)
        gevent.sleep(first_pause(self.rng, PLAN.think_min_s * PLAN.think_scale,
                                 PLAN.think_max_s * PLAN.think_scale))

    # ---- helpers ------------------------------------------------------------------------
    def _req(self, method: str, path: str, name: str, ok: tuple[int, ...] = (200,),
             **kw: Any) -> Any:
        """One request under the stats name `name`; statuses in `ok` count as success."""
        headers = {**self.headers, "X-Forwarded-For": self.address, **kw.pop("headers", {})}
        with self.client.request(method, API + path, name=name, headers=headers,
                                 catch_response=True, **kw) as r:
            if r.status_code in ok:
                r.success()
                try:
                    return r.json() if r.content else None
                except (ValueError, TypeError):
                    return None
            if r.status_code == 0:  # no answer: say why (refused, reset, timed out)
                r.failure(f"no response: {getattr(r, 'error', None)!r}"[:160])
            else:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:120]}")
            return None

    def _remember(self, doc: Any) -> None:
        for p in (doc or {}).get("items", []) if isinstance(doc, dict) else []:
            if isinstance(p, dict) and "id" in p:
                self.seen.append(p["id"])

    def _a_post(self) -> str | None:
        """A post to open or react to: mostly one just seen (top of the feed first)."""
        if self.seen and self.rng.random() < 0.7:
            # the newest seen are at the right end; favour them
            i = len(self.seen) - 1 - min(int(self.rng.expovariate(0.25)), len(self.seen) - 1)
            return self.seen[i]
        return HOT_POSTS.pick(self.rng) if HOT_POSTS else None

    def _an_account(self) -> tuple[str, str]:
        for _ in range(3):
            aid, name = POPULAR.pick(self.rng)
            if aid != self.account_id:
                return aid, name
        return POPULAR.items[-1]

    def _text(self, words: int = 12) -> str:
        body = " ".join(self.rng.choice(WORDS) for _ in range(words))
        if self.rng.random() < 0.4:
            body += f" #{HOT_TAGS.pick(self.rng)}"
        return body

    # ---- the one task: an action from the mix -----------------------------------------------
    @task
    def act(self) -> None:
        kind = weighted_choice(current_weights(), self.rng)
        getattr(self, f"do_{kind}")()

    # ---- actions (the requests of each match loadgen/traffic.ACTION_REQUESTS) --------------
    def do_home_feed(self) -> None:
        self._remember(self._req("GET", "/timelines/home?limit=20", "/timelines/home"))

    def do_thread(self) -> None:
        pid = self._a_post()
        if pid is None:
            return self.do_home_feed()
        # a post deleted or hidden by moderation since it was seen: 404 is a normal answer
        self._req("GET", f"/posts/{pid}/thread", "/posts/{id}/thread", ok=(200, 404))

    def do_profile(self) -> None:
        aid, _ = self._an_account()
        self._req("GET", f"/accounts/{aid}", "/accounts/{id}", ok=(200, 404))
        self._remember(self._req("GET", f"/accounts/{aid}/posts?limit=20",
                                 "/accounts/{id}/posts", ok=(200, 403, 404)))

    def do_discover(self) -> None:
        which = self.rng.choice(("posts", "tags", "latest"))
        q = "?limit=20" if which == "latest" else ""
        self._remember(self._req("GET", f"/discover/{which}{q}", f"/discover/{which}"))

    def do_search(self) -> None:
        if self.rng.random() < 0.6:
            _, name = self._an_account()
            self._req("GET", f"/search/accounts?q={name[:3]}", "/search/accounts")
        else:
            self._req("GET", f"/search/tags?q={HOT_TAGS.pick(self.rng)[:3]}", "/search/tags")

    def do_notifications(self) -> None:
        self._req("GET", "/notifications?limit=20", "/notifications")

    def do_post(self) -> None:
        self._req("POST", "/posts", "/posts", ok=(201,), json={"body": self._text()})

    def do_reply(self) -> None:
        pid = self._a_post()
        if pid is None:
            return self.do_post()
        # the parent may have been deleted or its author may block us
        self._req("POST", "/posts", "/posts (reply)", ok=(201, 403, 404),
                  json={"body": self._text(8), "reply_to_id": pid})

    def do_echo(self) -> None:
        pid = self._a_post()
        if pid is None:
            return self.do_post()
        # 409: this user echoed that post before (a correct refusal: users pick posts they saw)
        self._req("POST", f"/posts/{pid}/echo", "/posts/{id}/echo", ok=(201, 403, 404, 409),
                  json={"body": ""})

    def do_upvote(self) -> None:
        pid = self._a_post()
        if pid is None:
            return self.do_home_feed()
        self._req("POST", f"/posts/{pid}/upvote", "/posts/{id}/upvote", ok=(200, 403, 404))

    def do_follow(self) -> None:
        aid, _ = self._an_account()
        self._req("POST", f"/accounts/{aid}/follow", "/accounts/{id}/follow",
                  ok=(200, 403, 404))

    def do_report(self) -> None:
        pid = self._a_post()
        if pid is None:
            return self.do_home_feed()
        reason = weighted_choice(REPORT_REASONS, self.rng)
        # one report per reporter and case: a second one is refused with 409
        self._req("POST", "/reports", "/reports", ok=(201, 404, 409),
                  json={"reason": reason, "post_id": pid, "note": "load test"})

    def do_login(self) -> None:
        doc = self._req("POST", "/auth/login", "/auth/login",
                        json={"login": self.username, "password": ROSTER.password},
                        headers={"Authorization": ""})
        if doc and doc.get("token"):
            self.headers = {"Authorization": f"Bearer {doc['token']}"}

    def do_image_upload(self) -> None:
        boundary = "freehold" + secrets.token_hex(8)
        png = tiny_png(self.rng)
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"photo.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + png + (
                    f"\r\n--{boundary}--\r\n").encode()
        doc = self._req("POST", "/media", "/media", ok=(201,), data=body,
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if doc and doc.get("id"):
            self._req("POST", "/posts", "/posts (image)", ok=(201,),
                      json={"body": self._text(6), "media_ids": [doc["id"]]})

    def do_signup(self) -> None:
        """A newcomer of the flood: signs up, then follows a popular account; stays as them."""
        name = "nc_" + secrets.token_hex(6)
        doc = self._req("POST", "/accounts", "/accounts", ok=(201,), headers={"Authorization": ""},
                        json={"username": name, "email": f"{name}@{ROSTER.newcomer_domain}",
                              "password": ROSTER.password})
        if not doc or "token" not in doc:
            return
        self.account_id, self.username = doc["account"]["id"], name
        self.headers = {"Authorization": f"Bearer {doc['token']}"}
        aid, _ = self._an_account()
        self._req("POST", f"/accounts/{aid}/follow", "/accounts/{id}/follow (newcomer)",
                  ok=(200, 403, 404))
