"""Sign-up refuses the load-test username prefix (issue 18.1), on the API and the web form: a
name under it is always an account `freehold loadtest seed` made, never a person's."""

from __future__ import annotations

import secrets

from starlette.testclient import TestClient

from freehold.app.services.accounts import LOADTEST_PREFIX
from tests.integration.app.test_web import PASSWORD, Browser


def test_api_signup_refuses_the_loadtest_prefix(client: TestClient) -> None:
    for name in (f"{LOADTEST_PREFIX}{secrets.token_hex(3)}",
                 f"{LOADTEST_PREFIX.upper()}{secrets.token_hex(3)}"):
        r = client.post("/api/v1/accounts", json={"username": name,
                                                  "email": f"x{secrets.token_hex(3)}@example.org",
                                                  "password": PASSWORD})
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "username" and LOADTEST_PREFIX in r.json()["message"]
    # a name merely containing the word is a person's to take
    name = f"my_{LOADTEST_PREFIX}{secrets.token_hex(3)}"
    r = client.post("/api/v1/accounts", json={"username": name, "email": f"{name}@example.org",
                                              "password": PASSWORD})
    assert r.status_code == 201, r.text


def test_web_signup_refuses_the_loadtest_prefix(client: TestClient) -> None:
    b = Browser(client)
    name = f"{LOADTEST_PREFIX}{secrets.token_hex(3)}"
    r = b.post("/signup", {"username": name, "password": PASSWORD,
                           "email": f"{name}@example.org"}, page="/signup")
    assert r.status_code == 422, r.text[:300]
    assert "reserved for load tests" in r.text
    r = client.post("/api/v1/auth/login", json={"login": name, "password": PASSWORD})
    assert r.status_code == 401  # no such account was made
