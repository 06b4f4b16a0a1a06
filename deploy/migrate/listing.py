"""Listing a bucket of 100 M keys: an exact partition into key ranges, listed in parallel.

Ranges are cut by `StartAfter` boundaries b_1 < … < b_n: range i holds the keys k with
b_i < k <= b_{i+1} (the first from the start of the prefix, the last to its end), so every key
is listed exactly once whatever the keys look like. S3 lists in UTF-8 binary order, which is
Python's `str` order (code points), so the comparisons here are plain `<`.

The boundaries: the location's prefix, descended while a listing with Delimiter='/' shows exactly
one common prefix and no object (a bucket under `media_attachments/files/` has one useful level
further down), plus one character of an alphabet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# digits, letters and the separators keys usually hold: up to 66 ranges, each listed by one lister
ALPHABET = "-./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
PAGE = 1000  # keys per LIST request (the S3 maximum)
MAX_DEPTH = 32  # prefix levels descended at most


@dataclass(frozen=True)
class SourceObject:
    key: str
    size: int
    etag: str


@dataclass
class Page:
    objects: list[SourceObject] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False


# (prefix, start_after, delimiter, max_keys) -> one page, keys in S3 order
Lister = Callable[[str, str, str, int], Page]
Range = tuple[str | None, str | None]  # (after, upto): after < key <= upto, None = open end


def s3_lister(s3: object, bucket: str) -> Lister:
    """A Lister over a boto3 client's ListObjectsV2 (one request per call)."""

    def page(prefix: str, start_after: str, delimiter: str, max_keys: int) -> Page:
        args: dict[str, object] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max_keys}
        if start_after:
            args["StartAfter"] = start_after
        if delimiter:
            args["Delimiter"] = delimiter
        r = s3.list_objects_v2(**args)  # type: ignore[attr-defined]
        return Page([SourceObject(o["Key"], int(o["Size"]), o.get("ETag", "").strip('"'))
                     for o in r.get("Contents", [])],
                    [p["Prefix"] for p in r.get("CommonPrefixes", [])],
                    bool(r.get("IsTruncated")))

    return page


def descend(lister: Lister, prefix: str) -> tuple[str, list[str]]:
    """The deepest prefix holding every key under `prefix` (descend while a delimited listing
    shows one common prefix and no object, at most MAX_DEPTH levels), and the common prefixes
    the first page of its delimited listing shows."""
    for _ in range(MAX_DEPTH):
        p = lister(prefix, "", "/", PAGE)
        if p.objects or p.truncated or len(p.prefixes) != 1 or p.prefixes[0] == prefix:
            return prefix, p.prefixes
        prefix = p.prefixes[0]
    return prefix, []


def split_prefix(lister: Lister, prefix: str) -> str:
    return descend(lister, prefix)[0]


def boundaries(lister: Lister, prefix: str, alphabet: str = ALPHABET,
               fan_out: int = 16) -> list[str]:
    """The descended prefix plus each character of the alphabet; when that level holds only a
    few folders (`fan_out` or fewer: 110/, 111/ of Mastodon's media_attachments/files/), each
    folder plus each character too, so their keys are not listed by one lister. Any sorted set
    of boundaries is an exact partition: more of them only means more, smaller ranges."""
    base, folders = descend(lister, prefix)
    bounds = {base + c for c in alphabet}
    if len(folders) <= fan_out:
        bounds |= {f + c for f in folders for c in alphabet}
    # no boundary ends in "//": SeaweedFS answers StartAfter "dir//" with the keys of dir/
    # spelled "dir//name" (seen: videos/0000.mp4 listed, and copied, twice)
    return sorted(b for b in bounds if not b.endswith("//"))


def ranges(bounds: list[str]) -> list[Range]:
    """The n+1 ranges the sorted boundaries cut: (None, b1], (b1, b2], …, (bn, None)."""
    edges: list[str | None] = [None, *bounds, None]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def range_pages(lister: Lister, prefix: str, rng: Range,
                page_size: int = PAGE) -> Iterator[list[SourceObject]]:
    """The keys of one range, a page at a time (pages may be empty at the range's end)."""
    after, upto = rng
    start = after or ""
    while True:  # bounded: `start` grows strictly each turn, and the bucket is finite
        p = lister(prefix, start, "", page_size)
        keep = [o for o in p.objects if o.key > start and (upto is None or o.key <= upto)]
        if keep:
            yield keep
        if not p.truncated or not p.objects or (upto is not None and p.objects[-1].key > upto):
            return
        if p.objects[-1].key <= start:
            raise RuntimeError(f"listing does not advance after {start!r}: the store ignores "
                               "StartAfter")
        start = p.objects[-1].key


class RangeQueue:
    """Hands out the ranges of a partition to parallel listers, each range once.

    A lister that reaches the end of its range goes on into the next one when that is still
    free: the page that crossed the range's end is then not wasted (with a fixed page of 1,000
    keys, every range otherwise costs the store a page listed past its end: at 200 keys a range
    that is 5 times the keys; SeaweedFS spent 15 CPU-s listing 5,000 keys in 195 ranges, 1 s in
    one). Otherwise it starts in the middle of the longest run of free ranges (at its start when
    no lister can come into it from before), so the listers spread out and rarely jump."""

    def __init__(self, rs: list[Range]) -> None:
        self.ranges = rs
        self._free = [True] * len(rs)
        self._lock = threading.Lock()

    def take(self, after: int | None = None) -> int | None:
        """The range to list next: `after + 1` when free, else another free one; None: all
        taken."""
        with self._lock:
            if after is not None and after + 1 < len(self._free) and self._free[after + 1]:
                self._free[after + 1] = False
                return after + 1
            best, best_len, i = None, 0, 0
            for _ in range(len(self._free) + 1):  # bounded: i grows each turn
                if i >= len(self._free):
                    break
                if not self._free[i]:
                    i += 1
                    continue
                j = i
                while j < len(self._free) and self._free[j]:
                    j += 1
                if j - i > best_len:
                    best, best_len = (i if i == 0 else i + (j - i) // 2), j - i
                i = j
            if best is not None:
                self._free[best] = False
            return best


def claimed_pages(lister: Lister, prefix: str, rq: RangeQueue,
                  on_error: Callable[[Range, Exception], None],
                  stopped: Callable[[], bool] = lambda: False,
                  page_size: int = PAGE) -> Iterator[list[SourceObject]]:
    """The keys of the ranges this lister takes from `rq`, a page at a time, going on into the
    next range with the page already listed when it can (see RangeQueue). A range whose listing
    fails is handed to `on_error` (its keys not yet listed are left out) and the lister takes
    another."""
    i = rq.take()
    start, objs, more = "", [], True  # objs: keys listed after `start`, not yet handed out
    fresh = True
    for _ in range(len(rq.ranges) + 1):  # bounded: each turn takes a range
        if i is None or stopped():
            return
        after, upto = rq.ranges[i]
        if fresh:
            start, objs, more = after or "", [], True
        try:
            for _ in range(1 << 40):  # bounded by the bucket: `start` grows strictly
                if not objs and more:
                    p = lister(prefix, start, "", page_size)
                    if p.objects and p.objects[-1].key <= start:
                        raise RuntimeError(f"listing does not advance after {start!r}: the "
                                           "store ignores StartAfter")
                    objs = [o for o in p.objects if o.key > start]
                    more = p.truncated and bool(p.objects)
                    if p.objects:
                        start = p.objects[-1].key
                n = len(objs) if upto is None else _count_upto(objs, upto)
                if n:
                    yield objs[:n]
                objs = objs[n:]
                if objs or not more or stopped():
                    break  # a key past the range's end, or the end of the listing
        except Exception as e:  # noqa: BLE001 - reported, the lister goes on with another
            on_error(rq.ranges[i], e)
            i, fresh = rq.take(), True
            continue
        nxt = rq.take(after=i)
        fresh = nxt != i + 1
        i = nxt


def _count_upto(objs: list[SourceObject], upto: str) -> int:
    """How many of the sorted `objs` are <= upto."""
    lo, hi = 0, len(objs)
    while lo < hi:
        mid = (lo + hi) // 2
        if objs[mid].key <= upto:
            lo = mid + 1
        else:
            hi = mid
    return lo
