"""Accounts a drill makes for itself through the public API, as a phone app signs up: the
followers of the writing accounts (deploy.drills.followers) and the image uploaders
(deploy.drills.media). Sign-ups past the free allowance of an address solve the app's
proof-of-work challenge (app.services.signup_proof: the reference solver)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from freehold.deploy.drills.traffic import LOGIN_TIMEOUT, TrafficError

MAX_PROOF_BITS = 24  # the app asks at most signup_pow_max_bits (22): ~4 M hashes, seconds
PREFIX = "drill"


@dataclass(frozen=True)
class DrillAccount:
    username: str
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _proof(client: httpx.Client, base: str) -> dict[str, Any] | None:
    """A solved challenge when the site asks one of this address, else None."""
    from freehold.app.services.signup_proof import solve

    r = client.get(f"{base}/api/v1/accounts/challenge")
    if r.status_code != 200:
        raise TrafficError(f"{base}: the sign-up challenge answered {r.status_code}: "
                           f"{r.text[:120]}")
    doc = r.json()
    if not doc.get("required"):
        return None
    bits = int(doc["difficulty"])
    if bits > MAX_PROOF_BITS:
        raise TrafficError(f"{base}: a sign-up needs a proof of {bits} bits (more than "
                           f"{MAX_PROOF_BITS}): wait for the site's sign-up surge to pass")
    return {"challenge": doc["challenge"], "counter": solve(doc["challenge"], bits)}


def signup(client: httpx.Client, base: str, limit_s: float = 120.0) -> DrillAccount:
    """A new account (retried while the site answers 5xx or nothing, bounded)."""
    deadline = time.monotonic() + limit_s
    last = ""
    while time.monotonic() < deadline:
        name = f"{PREFIX}_{secrets.token_hex(5)}"
        body: dict[str, Any] = {"username": name, "email": f"{name}@drill.invalid",
                                "password": secrets.token_urlsafe(18)}
        try:
            proof = _proof(client, base)
            if proof is not None:
                body["proof"] = proof
            r = client.post(f"{base}/api/v1/accounts", json=body, timeout=LOGIN_TIMEOUT)
        except httpx.HTTPError as e:
            last = f"{type(e).__name__}: {e}"
            time.sleep(2)
            continue
        if r.status_code == 201:
            doc = r.json()
            return DrillAccount(name, str(doc["account"]["id"]), str(doc["token"]))
        last = f"answered {r.status_code}: {r.text[:120]}"
        if r.status_code in (400, 401, 403, 422):
            break
        if r.status_code == 429:
            wait = float(r.headers.get("retry-after", "10") or 10)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
            continue
        time.sleep(2)
    raise TrafficError(f"{base}: signing up a drill account {last}")


def account_id(client: httpx.Client, base: str, token: str) -> str:
    """The id of the account a token logs in (GET /accounts/me)."""
    r = client.get(f"{base}/api/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
    if r.status_code != 200:
        raise TrafficError(f"{base}: /accounts/me answered {r.status_code}: {r.text[:120]}")
    return str(r.json()["id"])


def write(client: httpx.Client, method: str, url: str, headers: dict[str, str],
          what: str, limit_s: float = 60.0, **kw: Any) -> httpx.Response:
    """One write of the drill's set-up (a follow, an upload before traffic), retried while the
    site answers 5xx, 429 or nothing (bounded); any other failure is a TrafficError."""
    deadline = time.monotonic() + limit_s
    last = ""
    while time.monotonic() < deadline:
        try:
            r = client.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as e:
            last = f"{type(e).__name__}: {e}"
            time.sleep(1)
            continue
        if 200 <= r.status_code < 300:
            return r
        last = f"answered {r.status_code}: {r.text[:120]}"
        if r.status_code < 500 and r.status_code != 429:
            break
        wait = float(r.headers.get("retry-after", "1") or 1) if r.status_code == 429 else 1.0
        time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
    raise TrafficError(f"{what}: {last}")
