"""OAuth 2 of the Mastodon API: app registration (query, form, JSON; custom schemes and oob),
the consent page (login first, CSRF, deny), code exchange with PKCE, client credentials,
refresh, revoke, hashed storage, scopes per route, and how requests are told apart from the
native API's."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import psycopg
from starlette.testclient import TestClient

from freehold.app.settings import Settings
from tests.integration.app.conftest import new_user
from tests.integration.app.mastodon.conftest import (
    REDIRECT,
    authorize,
    consent,
    pkce,
    register_app,
    restore_cookies,
)
from tests.integration.app.mastodon.entities import check


def test_register_app_from_query_form_and_json(client: TestClient) -> None:
    by_json = client.post("/api/v1/apps", json={
        "client_name": "J", "redirect_uris": ["mastodon://cb", "https://app.example/cb"],
        "scopes": "read write"})
    by_form = client.post("/api/v1/apps", data={
        "client_name": "F", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read"})
    by_query = client.post("/api/v1/apps", params={
        "client_name": "Q", "redirect_uris": "oauth2redirect://x.y/cb", "scopes": "follow"})
    for r in (by_json, by_form, by_query):
        assert r.status_code == 200, r.text
        check(r.json(), "CredentialApplication")
    assert by_json.json()["redirect_uris"] == ["mastodon://cb", "https://app.example/cb"]
    assert by_json.json()["scopes"] == ["read", "write"]
    assert by_form.json()["redirect_uri"] == "urn:ietf:wg:oauth:2.0:oob"
    assert by_query.json()["name"] == "Q"
    no_scope = client.post("/api/v1/apps", json={"client_name": "D", "redirect_uris": REDIRECT})
    assert no_scope.json()["scopes"] == ["read"]  # Mastodon's default


def test_register_app_refusals(client: TestClient) -> None:
    for body, field in ((({"client_name": "x", "redirect_uris": "javascript:alert(1)"}),
                         "redirect_uris"),
                        ({"client_name": "x", "redirect_uris": "https://"}, "redirect_uris"),
                        ({"client_name": "x", "redirect_uris": "/relative"}, "redirect_uris"),
                        ({"client_name": "x", "redirect_uris": REDIRECT, "scopes": "admin"},
                         "scopes"),
                        ({"redirect_uris": REDIRECT}, "client_name")):
        r = client.post("/api/v1/apps", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["error"], r.text


def test_code_flow_with_pkce(client: TestClient, app_settings: Settings) -> None:
    user = new_user(client, "oa")
    m = authorize(client, user)
    me = client.get("/api/v1/accounts/verify_credentials", headers=m.h)
    assert me.status_code == 200, me.text
    check(me.json(), "CredentialAccount")
    assert me.json()["id"] == user.id
    # stored hashed: the digest is there, the token itself nowhere
    with psycopg.connect(app_settings.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM oauth_tokens WHERE token_hash = %s",
                           (hashlib.sha256(m.token.encode()).digest(),)).fetchone()
        assert row is not None and row[0] == 1
        dump = conn.execute("SELECT t::text FROM oauth_tokens t").fetchall()
        assert not any(m.token in r[0] for r in dump)
        apps = conn.execute("SELECT a::text FROM oauth_apps a").fetchall()
        assert not any(m.app["client_secret"] in r[0] for r in apps)


def _code(client: TestClient, user: Any, app: dict[str, Any], challenge: str | None = None,
          scope: str = "read") -> str:
    q = {"client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
         "scope": scope}
    if challenge:
        q |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    r = consent(client, user, q)
    assert r.status_code == 302, r.text
    return re.search(r"code=([^&]+)", r.headers["location"]).group(1)  # type: ignore[union-attr]


def _token(client: TestClient, app: dict[str, Any], **form: str) -> Any:
    return client.post("/oauth/token", data={"client_id": app["client_id"],
                                             "client_secret": app["client_secret"], **form})


def test_code_refusals(client: TestClient) -> None:
    user = new_user(client, "oa")
    app = register_app(client, "read")
    verifier, challenge = pkce()
    code = _code(client, user, app, challenge)
    bad = _token(client, app, grant_type="authorization_code", code=code,
                 redirect_uri=REDIRECT, code_verifier=pkce()[0])
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    # the code was used by the failed attempt: a code works once
    again = _token(client, app, grant_type="authorization_code", code=code,
                   redirect_uri=REDIRECT, code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    code = _code(client, user, app)
    wrong = client.post("/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                              "client_id": app["client_id"],
                                              "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    other = register_app(client, "read")
    stolen = _token(client, other, grant_type="authorization_code", code=code,
                    redirect_uri=REDIRECT)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    # a scope the app did not register is refused on the consent page
    saved = list(client.cookies.jar)
    page = client.get("/oauth/authorize", params={
        "client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "read write"}, headers={"Cookie": f"fh_session={user.token}"})
    restore_cookies(client, saved)
    assert page.status_code == 400 and "invalid_scope" in page.text.lower()
    unknown_uri = client.get("/oauth/authorize", params={
        "client_id": app["client_id"], "redirect_uri": "https://evil.example/cb",
        "response_type": "code"}, follow_redirects=False)
    assert unknown_uri.status_code == 400  # never redirected to an unregistered URI


def test_consent_needs_login_csrf_and_can_be_denied(client: TestClient) -> None:
    user = new_user(client, "oa")
    app = register_app(client, "read")
    q = {"client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
         "scope": "read", "state": "s1"}
    saved = list(client.cookies.jar)
    client.cookies.jar.clear()  # no session of another test
    r = client.get("/oauth/authorize", params=q, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    no_csrf = client.post("/oauth/authorize", data={**q, "decision": "approve"},
                          headers={"Cookie": f"fh_session={user.token}"},
                          follow_redirects=False)
    restore_cookies(client, saved)
    assert no_csrf.status_code == 403
    denied = consent(client, user, q, decision="deny")
    assert denied.status_code == 302
    assert denied.headers["location"] == f"{REDIRECT}?error=access_denied&state=s1"


def test_out_of_band_code(client: TestClient) -> None:
    user = new_user(client, "oa")
    oob = "urn:ietf:wg:oauth:2.0:oob"
    app = register_app(client, "read", redirect=oob)
    shown = consent(client, user, {"client_id": app["client_id"], "redirect_uri": oob,
                                   "response_type": "code"})
    assert shown.status_code == 200
    code = re.search(r'id="oauth-code"', shown.text) and re.search(
        r'value="([^"]+)" aria-label="authorization code"', shown.text)
    assert code, shown.text
    tok = _token(client, app, grant_type="authorization_code", code=code.group(1),
                 redirect_uri=oob)
    assert tok.status_code == 200, tok.text
    check(tok.json(), "Token")
    assert tok.json()["scope"] == "read"


def test_client_credentials_refresh_and_revoke(client: TestClient) -> None:
    user = new_user(client, "oa")
    app = register_app(client, "read write")
    cc = _token(client, app, grant_type="client_credentials", scope="read")
    assert cc.status_code == 200, cc.text
    app_h = {"Authorization": f"Bearer {cc.json()['access_token']}"}
    verified = client.get("/api/v1/apps/verify_credentials", headers=app_h)
    assert verified.status_code == 200
    check(verified.json(), "Application")
    assert client.get("/api/v1/accounts/verify_credentials", headers=app_h).status_code == 401
    assert _token(client, app, grant_type="client_credentials",
                  scope="follow").json()["error"] == "invalid_scope"

    verifier, challenge = pkce()
    code = _code(client, user, app, challenge, scope="read write")
    first = _token(client, app, grant_type="authorization_code", code=code,
                   redirect_uri=REDIRECT, code_verifier=verifier).json()
    fresh = _token(client, app, grant_type="refresh_token",
                   refresh_token=first["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    old_h = {"Authorization": f"Bearer {first['access_token']}"}
    new_h = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert client.get("/api/v1/accounts/verify_credentials", headers=old_h).status_code == 401
    assert client.get("/api/v1/accounts/verify_credentials", headers=new_h).status_code == 200
    reused = _token(client, app, grant_type="refresh_token",
                    refresh_token=first["refresh_token"])
    assert reused.status_code == 400
    other = register_app(client, "read")
    stranger = client.post("/oauth/revoke", data={
        "client_id": other["client_id"], "client_secret": other["client_secret"],
        "token": fresh.json()["access_token"]})
    assert stranger.status_code == 403
    revoked = client.post("/oauth/revoke", data={
        "client_id": app["client_id"], "client_secret": app["client_secret"],
        "token": fresh.json()["access_token"]})
    assert revoked.status_code == 200 and revoked.json() == {}
    assert client.get("/api/v1/accounts/verify_credentials", headers=new_h).status_code == 401


def test_scopes_enforced_per_route(client: TestClient) -> None:
    user, other = new_user(client, "oa"), new_user(client, "oa")
    read = authorize(client, user, "read")
    h = read.h
    assert client.get("/api/v1/timelines/home", headers=h).status_code == 200
    denied = client.post("/api/v1/statuses", headers=h, json={"status": "no"})
    assert denied.status_code == 403
    assert denied.json() == {"error": "This action is outside the authorized scopes"}
    assert client.post(f"/api/v1/accounts/{other.id}/follow", headers=h).status_code == 403
    granular = authorize(client, user, "read:statuses write:favourites")
    assert client.get("/api/v1/timelines/home", headers=granular.h).status_code == 200
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers=granular.h).status_code == 403
    follow = authorize(client, user, "follow")
    assert client.post(f"/api/v1/accounts/{other.id}/follow",
                       headers=follow.h).status_code == 200
    assert client.post("/api/v1/statuses", headers=follow.h,
                       json={"status": "x"}).status_code == 403
    assert client.get("/api/v1/timelines/home").status_code == 401  # no token: native 401


def test_dispatch_native_and_mastodon_side_by_side(client: TestClient) -> None:
    user = new_user(client, "oa")
    m = authorize(client, user, "read")
    native = client.get("/api/v1/timelines/home", headers=user.h)
    masto = client.get("/api/v1/timelines/home", headers=m.h)
    assert isinstance(native.json(), dict) and "items" in native.json()
    assert isinstance(masto.json(), list)
    assert "x-ratelimit-limit" not in native.headers
    assert client.get(f"/api/v1/accounts/{user.id}", headers=user.h).json()["username"]
    check(client.get(f"/api/v1/accounts/{user.id}", headers=m.h).json(), "Account")
    # a native session token is not a Mastodon token
    r = client.get("/api/v1/accounts/verify_credentials", headers=user.h)
    assert r.status_code == 401 and r.json() == {"error": "The access token is invalid"}


def test_metadata_cors_rate_limit_headers_and_no_redirects(client: TestClient) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint"].endswith("/oauth/token")
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert {"read", "write", "follow", "push"} <= set(meta["scopes_supported"])
    pre = client.options("/api/v1/timelines/home", headers={
        "Origin": "https://elk.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    user = new_user(client, "oa")
    m = authorize(client, user, "read")
    r = client.get("/api/v1/timelines/home", headers={**m.h, "Origin": "https://elk.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    exposed = r.headers["access-control-expose-headers"]
    assert "Link" in exposed and "X-RateLimit-Remaining" in exposed
    limit, left = int(r.headers["x-ratelimit-limit"]), int(r.headers["x-ratelimit-remaining"])
    assert left < limit and re.match(r"\d{4}-\d\d-\d\dT", r.headers["x-ratelimit-reset"])
    r2 = client.get("/api/v1/timelines/home", headers=m.h)
    assert int(r2.headers["x-ratelimit-remaining"]) == left - 1
    for path in ("/api/v1/timelines/home/", "/api/v1/instance/", "/api/v2/instance/"):
        r = client.get(path, headers=m.h, follow_redirects=False)
        assert r.status_code == 200, (path, r.status_code)  # answered, not redirected
    assert client.get("/api/v1/statuses/1/nothing", headers=m.h,
                      follow_redirects=False).status_code == 404
