"""The JSON API's OpenAPI schema fuzzed with schemathesis: no 500 on any endpoint, and every
answer as the schema describes it (documented status code, content type, headers and body).

Every operation of /api/v1/openapi.json gets a bounded number of generated requests (valid and
invalid bodies, paths, queries), sent in-process to a fresh app (its own lifespan) with the
bearer token of a seeded account that is an admin and a juror (so the admin and jury code paths
are reached, not only their 403s). Logout is sent with a throwaway token so that the seeded
session survives the run.

The response checks are what make the schema trustworthy: its response models (app.api.schemas)
are documentation only (the routes return their Response themselves), so this is where a
service that adds, drops or retypes a field, or answers an undocumented status, is caught.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi as st_asgi
from starlette.testclient import TestClient

from freehold.app.main import create_app
from freehold.app.settings import Settings
from tests.integration.app.conftest import User, make_admin, new_user, wait_for

MAX_EXAMPLES = int(os.environ.get("FREEHOLD_FUZZ_EXAMPLES", "10"))
# operations whose 401 answers a wrong password, not a missing or bad session
PASSWORD_CHECKED = {"POST /api/v1/auth/login", "POST /api/v1/accounts/me/delete"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_user(client: TestClient, workers: Any) -> User:
    """An admin + juror with some data around it: follows, a post, replies, an echo, an image,
    a report, notifications (so that the answers checked against the schema have items of
    every kind, not only empty pages)."""
    admin = make_admin(client)
    other = new_user(client, "fz")
    r = client.put(f"/api/v1/admin/accounts/{admin.id}/juror", headers=admin.h,
                   json={"value": True})
    assert r.status_code == 200, r.text
    client.post(f"/api/v1/accounts/{other.id}/follow", headers=admin.h)
    post = client.post("/api/v1/posts", headers=other.h, json={"body": "fuzz #seed"}).json()
    reply = client.post("/api/v1/posts", headers=admin.h,
                        json={"body": "reply", "reply_to_id": post["id"]}).json()
    client.post("/api/v1/reports", headers=admin.h,
                json={"reason": "spam", "post_id": post["id"]})
    client.post(f"/api/v1/posts/{post['id']}/echo", headers=admin.h, json={})
    image = client.post("/api/v1/media", headers=admin.h,
                        files={"file": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(16), "image/png")})
    assert image.status_code == 201, image.text
    client.post("/api/v1/posts", headers=admin.h,
                json={"body": "with an image", "media_ids": [image.json()["id"]]})
    client.post(f"/api/v1/accounts/{admin.id}/follow", headers=other.h)
    client.post("/api/v1/posts", headers=other.h,
                json={"body": "@root_admin hi", "reply_to_id": reply["id"]})
    wait_for(lambda: client.get("/api/v1/notifications", headers=admin.h).json()["items"])
    return admin


@pytest.fixture(scope="module")
def api_schema(app_settings: Settings) -> Iterator[Any]:
    app = create_app(app_settings)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    try:
        yield schema
    finally:
        st_asgi.shutdown_lifespans()  # close this app's pools before the servers stop


def _fuzz(operation: Any, mode: GenerationMode, user: User, client: TestClient,
          statuses: Counter[int], refused: Counter[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: Any) -> None:
        token = user.token
        if case.path == "/auth/logout" or case.path.endswith("/auth/logout"):
            r = client.post("/api/v1/auth/login",
                            json={"login": user.username, "password": user.password})
            token = r.json()["token"]
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                          checks=CHECKS)
        statuses[response.status_code] += 1
        if response.status_code == 401 and mode == GenerationMode.POSITIVE:
            refused[f"{case.method} {case.path}"] += 1

    run()


def test_responses_conform(api_schema: Any, fuzz_user: User, client: TestClient) -> None:
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    refused: Counter[str] = Counter()  # 401 answers to valid requests, by operation
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzz_user, client, statuses, refused)
            except Unsatisfiable:
                if mode == GenerationMode.NEGATIVE:
                    continue  # no invalid input exists (an operation without parameters)
                failures.append(f"{operation.label}: no valid request can be generated, so it "
                                "was never exercised")
            # gathered: every failing operation reported (schemathesis raises several failures
            # of one operation as a FailureGroup, a BaseExceptionGroup)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])
    assert operations >= 30, f"only {operations} operations in the schema"
    assert not failures, "\n\n".join(failures)
    # the requests really reached the handlers as the seeded user (not all refused at the door)
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    assert ok >= operations, dict(statuses)
    # valid requests carried a live session all along: refused only where a password is checked
    # (negative cases are refused at the door by design: schemathesis breaks their auth too)
    assert set(refused) <= PASSWORD_CHECKED, dict(refused)


def test_nul_characters_refused_not_500(client: TestClient, fuzz_user: User) -> None:
    """PostgreSQL text cannot hold NUL: every text input refuses it before the database."""
    h = fuzz_user.h
    r = client.post("/api/v1/accounts", json={"username": "nul_user", "password": "x" * 10,
                                              "email": "a\x00b@example.org"})
    assert r.status_code == 422 and r.json()["field"] == "email"
    r = client.post("/api/v1/auth/login", json={"login": "a\x00b", "password": "whatever"})
    assert r.status_code == 401
    for path in ("/api/v1/search/accounts", "/api/v1/search/tags"):
        r = client.get(path, params={"q": "a\x00"}, headers=h)
        assert r.status_code == 422, (path, r.text)
    other = new_user(client, "nul")
    r = client.post("/api/v1/reports", headers=h,
                    json={"reason": "spam", "account_id": other.id, "note": "x\x00y"})
    assert r.status_code == 422 and r.json()["field"] == "note"
    r = client.get("/api/v1/tags/a%00b/posts", headers=h)
    assert r.status_code in (200, 404, 422), r.text
