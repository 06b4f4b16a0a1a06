"""app.context.LocalCache: the per-process memories are bounded in size and, when asked, in age."""

from __future__ import annotations

from freehold.app.context import LocalCache


def test_emptied_when_full_not_before() -> None:
    c: LocalCache[int, str] = LocalCache(max_items=3)
    for k in range(3):
        c.put(k, str(k))
    c.put(2, "two")  # a key it holds: replaced, nothing dropped
    assert [c.get(k) for k in range(3)] == ["0", "1", "two"]
    c.put(3, "3")  # a fourth key: emptied first
    assert [c.get(k) for k in range(4)] == [None, None, None, "3"] and len(c) == 1


def test_emptied_once_older_than_its_max_age() -> None:
    c: LocalCache[str, int] = LocalCache(max_age_s=60)
    c.put("a", 1)
    c.expire(now=c.since + 59)
    assert c.get("a") == 1  # not yet
    c.expire(now=c.since + 61)
    assert c.get("a") is None and len(c) == 0
    born = c.since
    c.put("b", 2)
    c.expire(now=born + 30)  # the age counts from the emptying
    assert c.get("b") == 2


def test_no_max_age_never_expires() -> None:
    c: LocalCache[str, int] = LocalCache()
    c.put("a", 1)
    c.expire(now=c.since + 10**9)
    assert c.get("a") == 1
