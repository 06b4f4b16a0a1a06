"""Sign-up under carrier-grade NAT: many sign-ups from one address pass with proofs of work,
sign-ups without a valid proof are refused (missing, wrong counter, expired, replayed, from
another address, tampered), difficulty rises with the rate from an address and with a site-wide
surge, and the per-address backstop still stops an absurd rate. The real app in-process over
real PostgreSQL and Redis; each test has its own emptied Redis database.

Settings come through `FREEHOLD_*` variables (Settings.from_env), as a deployment sets them;
difficulties are a few bits so that the reference solver takes milliseconds.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from playwright import sync_api  # required: a missing Playwright fails, never skips
from starlette.testclient import TestClient

from freehold.app.main import create_app
from freehold.app.services import signup_proof
from freehold.app.settings import Settings
from tests.browser import launch
from tests.integration.app.test_web import CSRF_RE
from tests.integration.app.test_web_browser import serving

PASSWORD = "correct horse battery"
CARRIER = "198.51.100.20"  # one carrier-grade NAT address: thousands of phones behind it
REDIS_DB = 7


def proof_settings(app_settings: Settings, **knobs: Any) -> Settings:
    """The app's test settings with the sign-up limits at their defaults, on an emptied Redis
    database of their own, then `knobs` set as FREEHOLD_* variables."""
    env = {k: v for k, v in app_settings.to_env().items()
           if k != "FREEHOLD_RL_SIGNUP_PER_IP" and not k.startswith("FREEHOLD_SIGNUP_")}
    env["FREEHOLD_REDIS_URL"] = app_settings.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    with redis.Redis.from_url(env["FREEHOLD_REDIS_URL"]) as r:
        r.flushdb()
    env.update({f"FREEHOLD_{k.upper()}": str(v) for k, v in knobs.items()})
    return Settings.from_env(env)


@contextmanager
def clients(settings: Settings, *addresses: str) -> Iterator[list[TestClient]]:
    """One app, one in-process client per client address (all served by the same app)."""
    app = create_app(settings)
    with TestClient(app, client=(addresses[0], 50000)) as first:
        rest = [TestClient(app, client=(a, 50000)) for a in addresses[1:]]
        for c in rest:
            c.portal = first.portal  # the event loop that holds the app's pools
        yield [first, *rest]


def body(prefix: str = "nat", **extra: Any) -> dict[str, Any]:
    name = f"{prefix}_{secrets.token_hex(4)}"
    return {"username": name, "email": f"{name}@example.org", "password": PASSWORD, **extra}


def challenge(c: TestClient) -> dict[str, Any]:
    r = c.get("/api/v1/accounts/challenge")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def solved(c: TestClient) -> dict[str, Any] | None:
    """A client's proof for its next sign-up, None when none is needed (or, like the web
    page's script, when the server offers no challenge)."""
    r = c.get("/api/v1/accounts/challenge")
    if r.status_code != 200 or not r.json()["required"]:
        return None
    doc = r.json()
    return {"challenge": doc["challenge"],
            "counter": signup_proof.solve(doc["challenge"], doc["difficulty"])}


def sign_up(c: TestClient, **extra: Any) -> Any:
    proof = solved(c)
    return c.post("/api/v1/accounts", json=body(**extra, **({"proof": proof} if proof else {})))


def refused(r: Any, words: str) -> None:
    assert r.status_code == 422, r.text
    doc = r.json()
    assert doc["error"] == "proof_refused" and doc["field"] == "proof", doc
    assert words in doc["message"] and "proof:" in doc["message"], doc


def test_fifty_sign_ups_from_one_address_pass_with_proofs(app_settings: Settings) -> None:
    """The old limit stopped the 11th sign-up from one address for an hour (429)."""
    s = proof_settings(app_settings, signup_pow_min_bits=6, signup_pow_max_bits=10)
    with clients(s, CARRIER) as (c,):
        proofs = 0
        for i in range(50):
            proofs += solved(c) is not None
            r = sign_up(c)
            assert r.status_code == 201, (i + 1, r.status_code, r.text)
        assert proofs >= 50 - s.signup_pow_free_per_ip - 1  # past the free ones, all proved
    assert s.rl_signup_per_ip >= 1000  # the default backstop: sized for carrier-grade NAT


def test_sign_up_without_a_valid_proof_is_refused(app_settings: Settings) -> None:
    s = proof_settings(app_settings, signup_pow_free_per_ip=0, signup_pow_min_bits=8)
    with clients(s, CARRIER, "203.0.113.9") as (c, elsewhere):
        doc = challenge(c)
        assert doc["required"] and doc["difficulty"] == 8
        assert doc["algorithm"] == "sha256-leading-zero-bits"
        assert doc["expires_at"] > time.time() + s.signup_pow_ttl_s - 60
        refused(c.post("/api/v1/accounts", json=body()), "GET /api/v1/accounts/challenge")
        good = signup_proof.solve(doc["challenge"], 8)
        wrong = next(n for n in range(good + 1, good + 10_000)
                     if signup_proof.leading_zero_bits(hashlib.sha256(
                         signup_proof.proof_input(doc["challenge"], n)).digest()) < 8)
        refused(c.post("/api/v1/accounts",
                       json=body(proof={"challenge": doc["challenge"], "counter": wrong})),
                "does not solve")
        bits, rest = doc["challenge"].split(".", 2)[1:]
        easier = f"1.{int(bits) - 4}.{rest}"  # fewer bits asked: the signature no longer fits
        refused(c.post("/api/v1/accounts",
                       json=body(proof={"challenge": easier,
                                        "counter": signup_proof.solve(easier, 4)})),
                "not issued to your address")
        refused(elsewhere.post("/api/v1/accounts",
                               json=body(proof={"challenge": doc["challenge"], "counter": good})),
                "not issued to your address")
        old, _ = signup_proof.issue(s, signup_proof.bucket(CARRIER), 8,
                                    now=time.time() - s.signup_pow_ttl_s - 5)
        refused(c.post("/api/v1/accounts",
                       json=body(proof={"challenge": old,
                                        "counter": signup_proof.solve(old, 8)})),
                "expired")
        refused(c.post("/api/v1/accounts", json=body(proof={"challenge": "1.8.x", "counter": 1})),
                "not a challenge of this server")
        proof = {"challenge": doc["challenge"], "counter": good}
        first = c.post("/api/v1/accounts", json=body(proof=proof))
        assert first.status_code == 201, first.text
        refused(c.post("/api/v1/accounts", json=body(proof=proof)), "already used")
        # a name already taken makes no account: that proof stays good for another name
        other = solved(c)
        taken = body(proof=other)
        taken["username"] = first.json()["account"]["username"]
        assert c.post("/api/v1/accounts", json=taken).status_code == 409
        again = c.post("/api/v1/accounts", json=body(proof=other))
        assert again.status_code == 201, again.text
        refused(c.post("/api/v1/accounts", json=body(proof=other)), "already used")
        r = c.post("/api/v1/accounts",
                   json=body(proof={"challenge": doc["challenge"], "counter": -1}))
        assert r.status_code == 422 and r.json()["field"] == "proof.counter", r.text


def test_the_web_form_without_javascript_says_why_it_needs_it(app_settings: Settings) -> None:
    s = proof_settings(app_settings, signup_pow_free_per_ip=0, signup_pow_min_bits=8)
    with clients(s, CARRIER) as (c,):
        page = c.get("/signup")
        assert 'data-proof="/api/v1/accounts/challenge"' in page.text
        csrf = CSRF_RE.search(page.text)
        assert csrf
        r = c.post("/signup", data={**body("web"), "csrf": csrf.group(1)})
        assert r.status_code == 422
        assert "needs JavaScript" in r.text and "web_" in r.text  # the form keeps its values
        doc = challenge(c)  # what the page's script does before sending
        proof = {"pow_challenge": doc["challenge"],
                 "pow_counter": str(signup_proof.solve(doc["challenge"], 8))}
        r = c.post("/signup", data={**body("web"), "csrf": csrf.group(1), **proof},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", r.text
        r = c.post("/signup", data={**body("web"), "csrf": csrf.group(1), **proof})
        assert r.status_code == 422 and "already used" in r.text


def test_difficulty_rises_with_the_rate_of_an_address(app_settings: Settings) -> None:
    # a window of a year: no window boundary falls inside the test, counts are exact
    s = proof_settings(app_settings, signup_pow_free_per_ip=2, signup_pow_min_bits=6,
                       signup_pow_max_bits=9, rl_signup_window=365 * 86400)
    with clients(s, CARRIER, "203.0.113.50") as (c, quiet):
        seen = []
        for _ in range(17):
            seen.append(challenge(c)["difficulty"])
            assert sign_up(c).status_code == 201
        # free, free, then 6 bits; one more each time the count doubles past 2; 9 at most
        assert seen == [0, 0, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9], seen
        assert challenge(c)["difficulty"] == 9
        assert challenge(quiet)["required"] is False  # another address is not affected


def test_a_site_wide_surge_asks_everyone_for_a_proof(app_settings: Settings) -> None:
    s = proof_settings(app_settings, signup_pow_min_bits=6, signup_pow_surge_per_window=4,
                       rl_signup_window=365 * 86400)
    addresses = [f"192.0.2.{i}" for i in range(1, 10)]
    with clients(s, *addresses) as cs:
        seen = []
        for c in cs:
            seen.append(challenge(c)["difficulty"])
            assert sign_up(c).status_code == 201
        # each address signs up once: free until the site counts 4, then 6 bits, 7 from 8
        assert seen == [0, 0, 0, 0, 6, 6, 6, 6, 7], seen


def test_the_backstop_stops_an_absurd_rate_even_with_proofs(app_settings: Settings) -> None:
    s = proof_settings(app_settings, rl_signup_per_ip=12, signup_pow_free_per_ip=1,
                       signup_pow_min_bits=4, signup_pow_max_bits=6)
    with clients(s, CARRIER, "2001:db8:5:6::1", "2001:db8:5:6:ffff::2") as (c, v6a, v6b):
        for _ in range(12):
            assert sign_up(c).status_code == 201
        r = sign_up(c)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited", r.text
        assert 1 <= int(r.headers["Retry-After"]) <= s.rl_signup_window + 1
        # an IPv6 subscriber holds a /64: its addresses share one count
        for i in range(12):
            assert sign_up(v6a if i % 2 else v6b).status_code == 201
        assert sign_up(v6b).status_code == 429


def test_the_web_form_solves_the_proof_in_a_real_browser(app_settings: Settings,
                                                         tmp_path: Path) -> None:
    """Debian's Chromium (Playwright) at the first real difficulty (17 bits: ~131,000 hashes):
    the page's script fetches the challenge, its workers solve it, the form signs up. With
    JavaScript off the same form says why it cannot."""
    s = proof_settings(app_settings, signup_pow_free_per_ip=0)  # the default bits
    with serving(s, tmp_path) as base, sync_api.sync_playwright() as pw, \
            redis.Redis.from_url(s.redis_url) as r:
        for javascript in (True, False):
            ctx = launch(pw, tmp_path / f"profile-{javascript}", java_script_enabled=javascript)
            try:
                page = ctx.new_page()
                name = f"pow_{secrets.token_hex(4)}"
                page.goto(f"{base}/signup")
                page.fill("input[name=username]", name)
                page.fill("input[name=email]", f"{name}@example.org")
                page.fill("input[name=password]", PASSWORD)
                page.click("form[action='/signup'] button[type=submit]")
                if javascript:
                    page.wait_for_url(f"{base}/")
                    assert page.locator(f"a[href='/u/{name}']").count() >= 1
                    assert len(list(r.scan_iter("su:spent:*"))) == 1  # one proof spent
                else:
                    page.wait_for_selector("p.notice.error")
                    assert "needs JavaScript" in page.inner_text("p.notice.error")
                    assert page.input_value("input[name=username]") == name
            finally:
                ctx.close()
    assert s.signup_pow_min_bits == 17
