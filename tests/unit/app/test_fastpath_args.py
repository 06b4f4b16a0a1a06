"""The home feed's short way in (app.api.fastpath) takes only requests the route would take as
they are; anything else goes to the route, which answers or refuses it as always."""

from __future__ import annotations

import pytest

from freehold.app.api.fastpath import bearer, page_args


@pytest.mark.parametrize(("query", "want"), [
    (b"", (40, None)),
    (b"limit=5", (5, None)),
    (b"limit=100&cursor=123.4", (100, "123.4")),
    (b"cursor=1234567890123456789", (40, "1234567890123456789")),
    (b"other=1&limit=7", (7, None)),  # unknown names are ignored, as the route ignores them
])
def test_plain_queries_are_taken(query: bytes, want: tuple[int, str | None]) -> None:
    assert page_args(query, 100) == want


@pytest.mark.parametrize("query", [
    b"limit=0", b"limit=101", b"limit=-1", b"limit=abc", b"limit=0000005", b"limit=",
    b"cursor=x", b"cursor=1.2.3", b"cursor=12345678901234567890", b"cursor=1.1234567",
    b"limit=5&limit=6",
])
def test_anything_else_is_left_to_the_route(query: bytes) -> None:
    assert page_args(query, 100) is None


def test_the_page_maximum_is_the_settings_one() -> None:
    """FREEHOLD_FEED_PAGE_MAX=200 lets a page of 150 through; the default stops at 100."""
    assert page_args(b"limit=150", 200) == (150, None)
    assert page_args(b"limit=201", 200) is None
    assert page_args(b"limit=150", 100) is None


def test_bearer_token() -> None:
    assert bearer([(b"host", b"x"), (b"authorization", b"Bearer abc")]) == "abc"
    assert bearer([(b"authorization", b"bearer abc")]) == "abc"
    assert bearer([(b"authorization", b"Basic abc")]) is None
    assert bearer([(b"authorization", b"Bearer ")]) is None
    assert bearer([]) is None
