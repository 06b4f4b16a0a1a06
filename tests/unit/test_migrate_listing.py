"""The listing partition (issue 25): every key listed exactly once, whatever the keys look like.

A fake lister with S3's ListObjectsV2 semantics (UTF-8 binary order, Prefix, StartAfter,
Delimiter, MaxKeys, IsTruncated) stands in for the store.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from freehold.deploy.migrate.listing import (
    ALPHABET,
    Page,
    RangeQueue,
    SourceObject,
    boundaries,
    claimed_pages,
    range_pages,
    ranges,
    split_prefix,
)


class FakeStore:
    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(set(keys), key=lambda k: k.encode())
        self.calls = 0

    def __call__(self, prefix: str, start_after: str, delimiter: str, max_keys: int) -> Page:
        self.calls += 1
        out, prefixes, n = [], [], 0
        for k in self.keys:
            if not k.startswith(prefix) or (start_after and k.encode() <= start_after.encode()):
                continue
            if delimiter and delimiter in k[len(prefix):]:
                cp = k[:len(prefix) + k[len(prefix):].index(delimiter) + 1]
                if prefixes and prefixes[-1] == cp:
                    continue
                if n == max_keys:
                    return Page(out, prefixes, True)
                prefixes.append(cp)
            else:
                if n == max_keys:
                    return Page(out, prefixes, True)
                out.append(SourceObject(k, 1, "0" * 32))
            n += 1
        return Page(out, prefixes, False)


def listed(store: FakeStore, prefix: str, page_size: int = 7) -> Counter[str]:
    seen: Counter[str] = Counter()
    for rng in ranges(boundaries(store, prefix)):
        for page in range_pages(store, prefix, rng, page_size=page_size):
            for o in page:
                assert (rng[0] is None or o.key > rng[0]) and (rng[1] is None or o.key <= rng[1])
                seen[o.key] += 1
    return seen


AWKWARD = [
    "a", "b", "media/a", "media/", "media", "media/é", "media/日本/猫.jpg", "media/\U0001f600.png",
    "media/~tilde", "media/ space", "media/!bang", "media/zz" * 30, "media/Z", "media/_",
    "media//double", "media/-", "media/.", "media/\x7f", "media/\u00ff", "media/0",
]


@pytest.mark.parametrize("prefix", ["", "media/", "media"])
def test_awkward_keys_each_listed_once(prefix: str) -> None:
    # keys equal to every boundary, and keys just around them
    bounds_like = ["media/" + c for c in ALPHABET]
    keys = AWKWARD + bounds_like + [b + "x" for b in bounds_like] + [b + "\x00" for b in
                                                                      bounds_like]
    store = FakeStore(keys)
    seen = listed(store, prefix)
    want = {k for k in store.keys if k.startswith(prefix)}
    assert set(seen) == want
    assert set(seen.values()) == {1}


def test_single_huge_prefix_is_descended() -> None:
    rnd = random.Random(25)
    keys = [f"accounts/media_attachments/files/{rnd.randrange(16**12):012x}/orig.jpg"
            for _ in range(3000)]
    store = FakeStore(keys)
    assert split_prefix(store, "") == "accounts/media_attachments/files/"
    seen = listed(store, "", page_size=100)
    assert set(seen) == set(store.keys) and set(seen.values()) == {1}
    # the hex keys are spread over 16 ranges, not one: parallel listers all get work
    busy = [r for r in ranges(boundaries(store, ""))
            if any(True for _ in range_pages(store, "", r, page_size=100))]
    assert len(busy) >= 16


def test_few_folders_are_split_below() -> None:
    rnd = random.Random(8)
    keys = [f"media_attachments/files/{rnd.choice((110, 111))}/{rnd.randrange(16**10):010x}"
            for _ in range(3000)]
    store = FakeStore(keys)
    seen = listed(store, "", page_size=50)
    assert set(seen) == set(store.keys) and set(seen.values()) == {1}
    busy = [r for r in ranges(boundaries(store, ""))
            if any(True for _ in range_pages(store, "", r, page_size=100))]
    assert len(busy) >= 30  # 2 folders × 16 hex digits, not 1 range


def test_descent_stops_at_objects_beside_the_prefix() -> None:
    store = FakeStore(["a/b/c/1", "a/b/c/2", "a/b/x"])
    assert split_prefix(store, "") == "a/b/"
    store = FakeStore(["a/b/c/1", "a/top"])
    assert split_prefix(store, "") == "a/"


def test_a_store_that_ignores_start_after_is_an_error_not_a_loop() -> None:
    store = FakeStore([f"k{i:03d}" for i in range(20)])

    def broken(prefix: str, start_after: str, delimiter: str, max_keys: int) -> Page:
        return store(prefix, "", delimiter, max_keys)

    with pytest.raises(RuntimeError, match="ignores StartAfter"):
        list(range_pages(broken, "", (None, None), page_size=5))


def test_no_boundary_ends_in_double_slash() -> None:
    # SeaweedFS answers StartAfter "videos//" with videos/0000.mp4 spelled "videos//0000.mp4"
    # (a second, phantom key): no range may start there; keys holding "//" are still listed once
    keys = ["media/videos/0000.mp4", "media/videos/0001.mp4", "media/videos//odd", "media/v/1"]
    store = FakeStore(keys)
    bounds = boundaries(store, "")
    assert bounds and not [b for b in bounds if b.endswith("//")]
    seen = listed(store, "")
    assert set(seen) == set(store.keys) and set(seen.values()) == {1}


def test_lean_list_page_parsing() -> None:
    from freehold.deploy.migrate.fasts3 import parse_list

    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    page = parse_list(f"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult {ns}><Name>b</Name><Prefix>a%2F</Prefix><EncodingType>url</EncodingType>
<IsTruncated>true</IsTruncated><Contents><Key>a/caf%C3%A9+1%2B%26.jpg</Key>
<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;0123&quot;</ETag>
<Size>42</Size></Contents><Contents><Key>a/b</Key><ETag>"ab-2"</ETag><Size>7</Size></Contents>
<CommonPrefixes><Prefix>a/d%2F</Prefix></CommonPrefixes></ListBucketResult>""".encode())
    assert page.objects == [SourceObject("a/café 1+&.jpg", 42, "0123"),
                            SourceObject("a/b", 7, "ab-2")]
    assert page.prefixes == ["a/d/"] and page.truncated
    # not URL-encoded (a store that ignores encoding-type): keys as they are
    plain = parse_list(b"<ListBucketResult><Contents><Key>a+b%41</Key><Size>1</Size>"
                       b"<ETag>e</ETag></Contents><IsTruncated>false</IsTruncated>"
                       b"</ListBucketResult>")
    assert plain.objects == [SourceObject("a+b%41", 1, "e")] and not plain.truncated
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NoSuchBucket"):
        parse_list(b"<Error><Code>NoSuchBucket</Code><Message>none</Message></Error>")


def _walk(store: FakeStore, rq: RangeQueue, listers: int, errors: list | None = None,
          page_size: int = 100) -> Counter[str]:
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def run() -> None:
        for page in claimed_pages(store, "", rq, lambda r, e: errors.append((r, e)),  # type: ignore[union-attr]
                                  page_size=page_size):
            assert [o.key for o in page] == sorted(o.key for o in page)
            with lock:
                seen.update(o.key for o in page)

    threads = [threading.Thread(target=run) for _ in range(listers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return seen


@pytest.mark.parametrize("listers", [1, 3, 8])
def test_claimed_ranges_list_every_key_once_without_a_page_past_each_range(listers: int) -> None:
    rnd = random.Random(listers)
    keys = [f"media_attachments/files/{rnd.choice((110, 111))}/{rnd.randrange(16**10):010x}"
            for _ in range(2000)] + ["media_attachments/files/110/", "zz", "media_attachments/"]
    store = FakeStore(keys)
    rq = RangeQueue(ranges(boundaries(store, "")))
    assert len(rq.ranges) > 100
    store.calls = 0
    seen = _walk(store, rq, listers)
    assert set(seen) == set(store.keys) and set(seen.values()) == {1}
    assert rq.take() is None  # every range was taken
    # one listing, page after page, plus a fresh start (a page past a range) per jump: not
    # one page per range (the ranges hold ~15 keys each)
    assert store.calls <= len(store.keys) // 100 + 1 + 4 * listers


def test_range_queue_spreads_listers_then_continues() -> None:
    rq = RangeQueue([(str(i), str(i + 1)) for i in range(16)])
    assert [rq.take() for _ in range(3)] == [0, 8, 4]  # the first from the start, then halves
    assert rq.take(after=0) == 1 and rq.take(after=8) == 9
    assert rq.take(after=3) == 13  # 4 is taken: the middle of the longest free run, 10-15


def test_a_failing_range_is_reported_and_the_rest_listed() -> None:
    keys = [f"k/{c}{i}" for c in "abc" for i in range(50)]
    store = FakeStore(keys)
    calls = {"n": 0}

    def flaky(prefix: str, start: str, delimiter: str, max_keys: int) -> Page:
        calls["n"] += 1
        if start.startswith("k/b") and not delimiter:
            raise OSError("reset")
        return store(prefix, start, delimiter, max_keys)

    rq = RangeQueue(ranges(boundaries(store, "")))
    errors: list = []
    seen: Counter[str] = Counter()
    for page in claimed_pages(flaky, "", rq, lambda r, e: errors.append((r, e)), page_size=10):
        seen.update(o.key for o in page)
    assert errors and all(isinstance(e, OSError) for _, e in errors)
    assert {k for k in keys if not k.startswith("k/b")} <= set(seen)
    assert set(seen.values()) == {1}
