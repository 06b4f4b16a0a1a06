"""The OpenAPI description documents the answers, not only the requests: each /api/v1 route's
success body (app.api.schemas), the error body for the statuses it can give (429 with its
Retry-After header on writes), and the services' documents match their models.

No servers needed: the schema is built from the app, the documents from the services' own
functions on hand-made rows; schemathesis' response checks (those the fuzz test runs on live
answers) are shown to refuse a document that drifts from its model.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import schemathesis
from schemathesis.checks import (
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from freehold.app.main import create_app
from freehold.app.services import errors as service_errors
from freehold.app.services.accounts import account_json
from freehold.app.services.posts import post_json
from freehold.app.settings import Settings

UNSAFE = {"post", "put", "patch", "delete"}
NOT_RATE_LIMITED = {"/api/v1/auth/logout"}  # log-out must always work
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(Settings(development=True)).openapi()


def api_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, path, op) for path, ops in spec["paths"].items() if path.startswith("/api/v1/")
            for m, op in ops.items()]


def json_schema(response: dict[str, Any]) -> dict[str, Any]:
    return response["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def component(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]  # type: ignore[no-any-return]


def test_a_write_documents_its_body_the_error_body_and_429(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/api/v1/posts"]["post"]["responses"]
    assert json_schema(responses["201"]) == {"$ref": "#/components/schemas/Post"}
    for status in ("400", "401", "403", "404", "422", "429"):
        assert json_schema(responses[status]) == {"$ref": ERROR_REF}, status
    retry = responses["429"]["headers"]["Retry-After"]
    assert retry["required"] is True and retry["schema"]["type"] == "integer"
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "message", "field"}
    assert error["required"] == ["error", "message"]
    assert error["additionalProperties"] is False
    # every code a service error can carry is a documented one (the web UI's own are not
    # the API's)
    classes, codes = [service_errors.ServiceError], set()
    while classes:
        cls = classes.pop()
        if cls.__module__ == service_errors.__name__:
            codes.add(cls.code)
        classes += cls.__subclasses__()
    assert codes <= set(error["properties"]["error"]["enum"])


def test_home_feed_documents_a_page_of_posts(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/api/v1/timelines/home"]["get"]["responses"]
    page = component(spec, json_schema(responses["200"])["$ref"])
    assert page["required"] == ["items", "next_cursor"]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Post"}
    post = spec["components"]["schemas"]["Post"]
    assert {"id", "author", "body", "tags", "mentions", "reply_to_id", "root_id", "media",
            "upvotes_count", "replies_count", "echoes_count", "created_at", "upvoted",
            "hidden", "echo_of"} == set(post["required"])
    assert {"$ref": "#/components/schemas/EchoedPost"} in post["properties"]["echo_of"]["anyOf"]
    assert json_schema(responses["401"]) == {"$ref": ERROR_REF}


def test_every_api_operation_documents_its_answers(spec: dict[str, Any]) -> None:
    ops = api_operations(spec)
    assert len(ops) >= 40
    for method, path, op in ops:
        label, responses = f"{method.upper()} {path}", op["responses"]
        ok = [s for s in responses if s.startswith("2")]
        assert len(ok) == 1, label
        if ok[0] == "204":
            assert "content" not in responses["204"], label
        else:  # a model, not FastAPI's {"type": "string"} for a non-JSONResponse class
            assert "$ref" in json_schema(responses[ok[0]]), label
        for status, response in responses.items():
            if status.startswith("4"):
                assert json_schema(response) == {"$ref": ERROR_REF}, (label, status)
        if op.get("security"):
            assert "401" in responses, label
        if method in UNSAFE and path not in NOT_RATE_LIMITED:
            assert "Retry-After" in responses["429"]["headers"], label
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in responses, label
    assert "HTTPValidationError" not in spec["components"]["schemas"]


# --- the services' documents against their models, through schemathesis' checks ---------

NOW = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
CTX: Any = SimpleNamespace(settings=Settings())  # what the documents read of a Ctx
ACCOUNT_ROW = {"id": 4611686018427387904, "username": "ann", "display_name": "", "bio": "hi",
               "avatar_key": "avatars/1.png", "is_verified": True, "is_juror": False,
               "is_admin": False, "suspended_at": None, "followers_count": 3,
               "following_count": 4, "posts_count": 5, "created_at": NOW, "strikes": 1}


def post_row(**extra: Any) -> dict[str, Any]:
    row = {"id": 700000000000000001, "author_id": 7, "username": "ann", "display_name": "Ann",
           "avatar_key": None, "is_verified": False, "body": "hello #tag @bob",
           "reply_to_id": 700000000000000000, "root_id": 700000000000000000,
           "media": [{"id": 9, "type": "image/png", "key": "media/9.png"}],
           "upvotes_count": 1, "replies_count": 2, "echoes_count": 3, "upvoted": True,
           "hidden": False, "echo_of_id": None}
    return {**row, **extra}


ECHO = post_row(body="", reply_to_id=None, root_id=None, media=[], echo_of_id=8,
                e_author_id=9, e_username="bob", e_display_name="", e_avatar_key="avatars/b.gif",
                e_is_verified=True, e_body="original", e_reply_to_id=None, e_root_id=None,
                e_media=[], e_hidden=False, e_upvotes=0, e_replies=0, e_echoes=1)


@pytest.fixture(scope="module")
def st_schema(spec: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(spec)


def check(st_schema: Any, method: str, path: str, status: int, doc: Any,
          headers: dict[str, str] | None = None) -> None:
    """Schemathesis' response checks on an answer `doc` of (method, path): raises when it does
    not conform."""
    params = {name: "verified" if name == "flag" else "1"
              for name in re.findall(r"\{(\w+)\}", path)}
    case = st_schema[path][method].Case(path_parameters=params)
    url = "http://testserver" + path.format(**params)
    response = httpx.Response(status, json=doc, headers=headers,
                              request=httpx.Request(method, url))
    response.elapsed = timedelta(0)
    case.validate_response(response, checks=[status_code_conformance,
                                              response_headers_conformance,
                                              response_schema_conformance])


def test_services_documents_conform_and_drift_is_caught(st_schema: Any) -> None:
    own = account_json(CTX, ACCOUNT_ROW, private=True)
    check(st_schema, "GET", "/api/v1/accounts/me", 200, own)
    public = account_json(CTX, ACCOUNT_ROW)
    check(st_schema, "PUT", "/api/v1/admin/accounts/{account_id}/{flag}", 200, public)
    for row in (post_row(), ECHO):
        check(st_schema, "GET", "/api/v1/posts/{post_id}", 200, post_json(CTX, cast(Any, row)))
    check(st_schema, "GET", "/api/v1/timelines/home", 200,
          {"items": [post_json(CTX, cast(Any, ECHO))], "next_cursor": None})
    check(st_schema, "POST", "/api/v1/posts", 429,
          {"error": "rate_limited", "message": "too many"}, headers={"Retry-After": "3"})

    drifts: list[tuple[str, str, int, Any, dict[str, str] | None, str]] = [
        ("GET", "/api/v1/accounts/me", 200, {**own, "email": "a@b.org"}, None,  # a new field
         "JsonSchemaError"),
        ("GET", "/api/v1/accounts/me", 200, public, None, "JsonSchemaError"),  # no `strikes`
        ("GET", "/api/v1/accounts/me", 200, {**own, "followers_count": "3"}, None,
         "JsonSchemaError"),
        ("GET", "/api/v1/accounts/me", 409, {"error": "conflict", "message": "x"}, None,
         "UndefinedStatusCode"),
        ("GET", "/api/v1/accounts/me", 401, {"detail": "Not authenticated"}, None,
         "JsonSchemaError"),
        ("POST", "/api/v1/posts", 429, {"error": "rate_limited", "message": "x"}, None,
         "MissingHeaders"),
    ]
    for method, path, status, doc, headers, failure in drifts:
        with pytest.raises(BaseExceptionGroup) as info:  # schemathesis' FailureGroup
            check(st_schema, method, path, status, doc, headers)
        assert {type(e).__name__ for e in info.value.exceptions} == {failure}, (path, status)
