"""Helpers of the Mastodon API tests: an OAuth app and a user token got through the real
flow (register, consent form with its CSRF token, code exchange with PKCE)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.testclient import TestClient

from tests.integration.app.conftest import User

REDIRECT = "myapp://oauth-callback"


@dataclass
class MUser:
    """A Freehold user with a Mastodon API token."""

    user: User
    token: str
    app: dict[str, Any]

    @property
    def id(self) -> str:
        return self.user.id

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def register_app(client: TestClient, scopes: str = "read write follow push",
                 redirect: str = REDIRECT) -> dict[str, Any]:
    r = client.post("/api/v1/apps", json={"client_name": "Test app", "redirect_uris": redirect,
                                          "scopes": scopes, "website": "https://example.org"})
    assert r.status_code == 200, r.text
    return r.json()


def consent(client: TestClient, user: User, query: dict[str, str], decision: str = "approve"
            ) -> Any:
    """Open the consent page as `user` (web session cookie) and submit it: the response."""
    cookies = {"fh_session": user.token}
    saved = list(client.cookies.jar)  # the shared client's cookies, put back afterwards
    try:
        page = client.get("/oauth/authorize", params=query, headers=_cookie(cookies))
        assert page.status_code == 200, page.text
        csrf_cookie = page.cookies.get("fh_csrf")
        assert csrf_cookie, "the consent page sets the CSRF cookie"
        field = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert field, page.text
        form = {k: v for k, v in re.findall(
            r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.text)}
        form["decision"] = decision
        return client.post("/oauth/authorize", data=form, follow_redirects=False,
                           headers=_cookie({**cookies, "fh_csrf": csrf_cookie}))
    finally:
        restore_cookies(client, saved)


def restore_cookies(client: TestClient, saved: list[Any]) -> None:
    """The shared client keeps no cookie of this flow, and every cookie it had."""
    client.cookies.jar.clear()
    for c in saved:
        client.cookies.jar.set_cookie(c)


def _cookie(c: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in c.items())}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize(client: TestClient, user: User, scopes: str = "read write follow push",
              app: dict[str, Any] | None = None) -> MUser:
    """A token for `user` by the code flow with PKCE."""
    app = app or register_app(client, scopes)
    verifier, challenge = pkce()
    r = consent(client, user, {"client_id": app["client_id"], "redirect_uri": REDIRECT,
                               "response_type": "code", "scope": scopes, "state": "xyz",
                               "code_challenge": challenge, "code_challenge_method": "S256"})
    assert r.status_code == 302, r.text
    loc = urlsplit(r.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == REDIRECT
    q = parse_qs(loc.query)
    assert q["state"] == ["xyz"]
    tok = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": q["code"][0], "client_id": app["client_id"],
        "client_secret": app["client_secret"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert tok.status_code == 200, tok.text
    return MUser(user, tok.json()["access_token"], app)
