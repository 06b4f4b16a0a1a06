"""A Mastodon app's login, as a phone app does it, shared by the integration tests (uvicorn on
loopback) and the lab's (the sites' virtual IPs over HTTPS, the lab CA verified): sign up
through the native API, register an app, authorize by code through the consent form as a
logged-in browser would, exchange the code for a token (Mastodon.py).

`verify` is what httpx and requests take: True (the system's CAs) or a CA file's path.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import requests
from mastodon import Mastodon

SCOPES = ["read", "write", "follow", "push"]
REDIRECT = "freeholdtest://oauth"


def signup(base: str, prefix: str, verify: bool | str = True) -> dict[str, Any]:
    name = f"{prefix}_{secrets.token_hex(4)}"
    r = httpx.post(f"{base}/api/v1/accounts", json={
        "username": name, "email": f"{name}@example.org", "password": "correct horse battery"},
        timeout=120, verify=verify)
    assert r.status_code == 201, r.text
    return {"name": name, **r.json()}


def consent_code(auth_url: str, session_token: str, verify: bool | str = True) -> str:
    """Drive the consent page as a logged-in browser would: the code from the redirect."""
    with httpx.Client(cookies={"fh_session": session_token}, timeout=120,
                      verify=verify) as web:
        page = web.get(auth_url)
        assert page.status_code == 200, page.text
        form = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"',
                               page.text))
        assert form.get("csrf"), page.text
        r = web.post(page.url.copy_with(query=None), data={**form, "decision": "approve"},
                     follow_redirects=False)
    assert r.status_code == 302, r.text
    loc = urlsplit(r.headers["location"])
    assert loc.scheme == "freeholdtest"
    return parse_qs(loc.query)["code"][0]


def client_for(base: str, user: dict[str, Any], verify: bool | str = True) -> Mastodon:
    session = requests.Session()
    session.verify = verify
    # requests lets $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE override a session's CA file (set on
    # many machines, this one included): the lab CA would be ignored and its certificate refused
    session.trust_env = False
    cid, secret = Mastodon.create_app("Freehold test", scopes=SCOPES, redirect_uris=REDIRECT,
                                      api_base_url=base, session=session)
    # a 429 fails the test at once (the default waits and retries)
    api = Mastodon(client_id=cid, client_secret=secret, api_base_url=base,
                   ratelimit_method="throw", session=session)
    url = api.auth_request_url(redirect_uris=REDIRECT, scopes=SCOPES, allow_http=True)
    code = consent_code(url, user["token"], verify)
    api.log_in(code=code, redirect_uri=REDIRECT, scopes=SCOPES, allow_http=True)
    return api
