"""Parallel, resumable, verified S3 → S3 object copy that holds at 100 M keys.

Listers take key ranges (listing.py) and put what the checkpoint (checkpoint.py) does not hold
verified with the same ETag and size on a bounded queue; copiers take from it and copy
(transfer.py) while the listing goes on. Every verified object goes to the checkpoint, committed
in batches. The target is not listed before copying: `verify()` is the separate final pass that
lists both sides range by range and compares size and checksum.

Throttling (503 SlowDown), 5xx answers and connection resets are retried, not failed: botocore's
adaptive mode (a throttled client slows down, jittered backoff) and then the copier's own
bounded retry with full jitter; every retry is counted in the report.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.checkpoint import (
    Checkpoint,
    CheckpointReader,
    CheckpointWriter,
    etag_entry,
)
from freehold.deploy.migrate.fasts3 import FastS3, Unsupported
from freehold.deploy.migrate.listing import (
    Lister,
    Page,
    Range,
    RangeQueue,
    SourceObject,
    boundaries,
    claimed_pages,
    range_pages,
    ranges,
    s3_lister,
)
from freehold.deploy.migrate.s3client import S3Location, client, session
from freehold.deploy.migrate.transfer import (
    ETAG_META,
    MD5_META,
    PART_MIN,
    Interrupted,
    Transfer,
    is_md5,
    target_key,
)

__all__ = ["CopyReport", "ObjectCopier", "SourceObject", "VerifyReport", "explain",
           "target_key"]

T = TypeVar("T")
KEEP_FAILURES = 1000  # failures kept by key in the report (all are counted)
SAMPLE = 1000  # keys a dry run shows
RETRY_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
               "RequestTimeoutException", "InternalError", "ServiceUnavailable", "BadDigest",
               "SlowDownRead", "SlowDownWrite", "OperationAborted", "500", "502", "503", "504"}
GONE_CODES = {"NoSuchKey", "404", "NotFound"}


def explain(e: BaseException, loc: S3Location) -> str:
    """One line for an S3 error: what went wrong where and what to do."""
    if isinstance(e, EndpointConnectionError):
        return f"{loc.describe()}: cannot connect — check the endpoint address and that it runs"
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        # HeadBucket has no body: a missing bucket comes back as a bare 404
        if code == "NoSuchBucket" or (code in ("404", "NotFound")
                                      and e.operation_name == "HeadBucket"):
            return f"{loc.describe()}: bucket {loc.bucket!r} does not exist — check its name"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return (f"{loc.describe()}: credentials refused ({code}) — check the access key "
                    "and secret (AWS_PROFILE / --profile or the --*-key options)")
        if code == "InvalidObjectState":
            return f"{loc.describe()}: object in Glacier — restore it first"
        return f"{loc.describe()}: {code or 'error'}: {e}"
    if isinstance(e, BotoCoreError):
        return f"{loc.describe()}: {e}"
    return f"{loc.describe()}: {type(e).__name__}: {e}"


S3_ERRORS = (BotoCoreError, ClientError)  # what `explain` turns into one line


def retryable(e: BaseException) -> bool:
    """Throttling, a 5xx, a reset or timeout, a short or corrupt read: worth another try."""
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in RETRY_CODES or status >= 500
    return isinstance(e, BotoCoreError | OSError) and not isinstance(e, Interrupted)


def gone(e: BaseException) -> bool:
    return isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") in GONE_CODES


@dataclass
class CopyReport:
    listed: int = 0
    copied: int = 0
    skipped: int = 0
    vanished: int = 0  # deleted at the source between listing and copy
    failed: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    bytes_copied: int = 0
    to_copy: int = 0  # dry run: the objects a copy would move
    bytes_to_copy: int = 0  # dry run: their bytes
    retries: int = 0
    ranges: int = 0
    seconds: float = 0.0
    sample: list[str] = field(default_factory=list)  # dry run: keys that would be copied
    checkpoint_rows: int = 0
    fallbacks: list[str] = field(default_factory=list)  # stores the lean client gave up on

    def as_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "copied": self.copied, "skipped": self.skipped,
                "vanished": self.vanished, "failed": self.failed, "failures": self.failures,
                "bytes_copied": self.bytes_copied, "retries": self.retries,
                "ranges": self.ranges, "checkpoint_rows": self.checkpoint_rows,
                "fallbacks": self.fallbacks,
                "seconds": round(self.seconds, 3)}


@dataclass
class VerifyReport:
    checked: int = 0
    missing: int = 0
    mismatched: int = 0
    problems: list[str] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched)

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "missing": self.missing,
                "mismatched": self.mismatched, "problems": self.problems[:100],
                "retries": self.retries, "seconds": round(self.seconds, 3)}


class _Counter:
    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def add(self, k: int) -> None:
        if k:
            with self._lock:
                self.n += k


class ObjectCopier:
    """Copies `source` to `target`; `checkpoint` (a SQLite file) records each verified object."""

    def __init__(self, source: S3Location, target: S3Location, checkpoint: Path,
                 workers: int = 16, retries: int = 6, backoff: float = 0.5, listers: int = 4,
                 part_size: int = PART_MIN, parts_in_flight: int = 8,
                 legacy_checkpoint: Path | None = None, fast: bool = True) -> None:
        self.source, self.target, self.checkpoint = source, target, checkpoint
        self.workers, self.retries, self.backoff = workers, retries, backoff
        self.listers, self.part_size, self.parts_in_flight = listers, part_size, parts_in_flight
        self.legacy_checkpoint, self.fast = legacy_checkpoint, fast
        pool = workers + listers + parts_in_flight + 4
        # every body goes with Content-MD5, which the store checks: no SHA-256 of it to sign
        self.src = client(source, max_pool=pool, attempts=5, mode="adaptive", sign_payload=False)
        self.dst = client(target, max_pool=pool, attempts=5, mode="adaptive", sign_payload=False)
        # the lean client for the hot requests, per side, until a store needs boto3
        self.lean: dict[str, FastS3 | None] = {"source": None, "target": None}
        if fast:
            for side, c, loc in (("source", self.src, source), ("target", self.dst, target)):
                creds = session(loc).get_credentials()
                self.lean[side] = FastS3(c, creds, pool) if creds is not None else None
        self.fallbacks: list[str] = []
        self.retry_count = _Counter()
        for c in (self.src, self.dst):
            c.meta.events.register("after-call.s3", self._count_retries)
        self.after_object: Callable[[str], None] | None = None  # hook: tests interrupt here
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _count_retries(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        self.retry_count.add(int((parsed or {}).get("ResponseMetadata", {})
                                 .get("RetryAttempts", 0)))

    def stop(self) -> None:
        """Stop taking work: listers and copiers end after their current page / object."""
        self._stop.set()

    # -- checks -----------------------------------------------------------------------
    def check_access(self) -> None:
        for loc in (self.source, self.target):
            try:
                client(loc, max_pool=2, attempts=2).head_bucket(Bucket=loc.bucket)
            except S3_ERRORS as e:
                raise MigrateError(explain(e, loc)) from None

    def open_checkpoint(self) -> Checkpoint:
        return Checkpoint(self.checkpoint, f"s3://{self.source.bucket}/{self.source.prefix}",
                          f"s3://{self.target.bucket}/{self.target.prefix}",
                          legacy=self.legacy_checkpoint)

    # -- retries ----------------------------------------------------------------------
    def _retrying(self, what: Callable[[], T]) -> T:
        for attempt in range(self.retries):
            try:
                return what()
            except Exception as e:
                if not retryable(e) or attempt == self.retries - 1 or self._stop.is_set():
                    raise
            self.retry_count.add(1)
            # full jitter, capped: many workers backing off do not come back in step
            time.sleep(random.uniform(0, min(self.backoff * 2 ** attempt, 15.0)))
        raise AssertionError("unreachable")

    def _lister(self, s3: Any, loc: S3Location) -> Lister:
        raw = s3_lister(s3, loc.bucket)
        side = "source" if s3 is self.src else "target"

        def once(prefix: str, start: str, delimiter: str, max_keys: int) -> Page:
            fast = self.lean.get(side)
            if fast is not None:
                try:
                    return fast.list(loc.bucket, prefix, start, delimiter, max_keys)
                except Unsupported as e:
                    with self._lock:
                        self.lean[side] = None
                        self.fallbacks.append(f"{side}: {e}")
            return raw(prefix, start, delimiter, max_keys)

        def page(prefix: str, start: str, delimiter: str, max_keys: int) -> Page:
            return self._retrying(lambda: once(prefix, start, delimiter, max_keys))

        return page

    def partition(self, s3: Any, loc: S3Location) -> list[Range]:
        try:
            return ranges(boundaries(self._lister(s3, loc), loc.prefix))
        except S3_ERRORS as e:
            raise MigrateError(explain(e, loc)) from None

    # -- the copy ---------------------------------------------------------------------
    def run(self, progress: Callable[[int], None] = lambda n: None,
            dry_run: bool = False) -> CopyReport:
        """List and copy everything the checkpoint does not hold verified; `dry_run`: count
        what would be copied (report.sample: some of its keys), copy nothing."""
        report = CopyReport()
        t0 = time.monotonic()
        cp = self.open_checkpoint()
        todo = self.partition(self.src, self.source)
        report.ranges = len(todo)
        range_q = RangeQueue(todo)
        work: queue.Queue[SourceObject | None] = queue.Queue(maxsize=self.workers * 16)
        writer = CheckpointWriter(self.checkpoint)
        transfer = Transfer(self.src, self.dst, self.source, self.target, self.part_size,
                            self.parts_in_flight, stopped=self._stop.is_set,
                            fast_src=self.lean["source"], fast_dst=self.lean["target"])
        errors: list[BaseException] = []
        listers = [threading.Thread(target=self._list_ranges, name=f"lister-{i}", daemon=True,
                                    args=(cp, range_q, work, report, dry_run, errors))
                   for i in range(min(self.listers, len(todo)))]
        copiers = [] if dry_run else [
            threading.Thread(target=self._copy_loop, name=f"copier-{i}", daemon=True,
                             args=(transfer, work, writer, report, progress, errors))
            for i in range(self.workers)]
        writer.start()
        try:
            for t in listers + copiers:
                t.start()
            _join(listers)
            for _ in copiers:
                _put(work, None, self._stop)
            _join(copiers)
        except BaseException:
            self._stop.set()
            for t in listers + copiers:
                t.join(timeout=120)
            raise
        finally:
            transfer.close()
            writer.close()
            report.retries = self.retry_count.n
            report.fallbacks = self.fallbacks + transfer.fallbacks
            report.checkpoint_rows = cp.count()
            report.seconds = time.monotonic() - t0
            report.sample.sort()
        if errors:
            raise errors[0]
        return report

    def _list_ranges(self, cp: Checkpoint, range_q: RangeQueue,
                     work: queue.Queue[SourceObject | None], report: CopyReport, dry_run: bool,
                     errors: list[BaseException]) -> None:
        reader = cp.reader()
        lister = self._lister(self.src, self.source)

        def failed(rng: Range, e: Exception) -> None:  # one range's failure is reported
            self._fail(report, f"(listing keys after {rng[0]!r})", e)

        try:
            pages = claimed_pages(lister, self.source.prefix, range_q, failed, self._stop.is_set)
            self._list_pages(reader, pages, work, report, dry_run)
        except BaseException as e:
            errors.append(e)
            self._stop.set()
        finally:
            reader.close()

    def _list_pages(self, reader: CheckpointReader, pages: Iterator[list[SourceObject]],
                    work: queue.Queue[SourceObject | None], report: CopyReport,
                    dry_run: bool) -> None:
        for page in pages:
            known = reader.between(page[0].key, page[-1].key)
            new = [o for o in page if known.get(o.key) != etag_entry(o.etag, o.size)]
            with self._lock:
                report.listed += len(page)
                report.skipped += len(page) - len(new)
                if dry_run:
                    report.to_copy += len(new)
                    report.bytes_to_copy += sum(o.size for o in new)
                    report.sample.extend(o.key for o in new[:max(0, SAMPLE - len(report.sample))])
            if dry_run:
                continue
            for o in new:
                if not _put(work, o, self._stop):
                    return
            if self._stop.is_set():
                return

    def _copy_loop(self, transfer: Transfer, work: queue.Queue[SourceObject | None],
                   writer: CheckpointWriter, report: CopyReport,
                   progress: Callable[[int], None], errors: list[BaseException]) -> None:
        try:
            while not self._stop.is_set():
                try:
                    o = work.get(timeout=0.2)
                except queue.Empty:
                    continue
                if o is None:
                    return
                try:
                    done = self._retrying(lambda o=o: transfer.copy(o))  # type: ignore[misc]
                except Interrupted:
                    return
                except Exception as e:  # noqa: BLE001 - one object's failure is reported
                    if gone(e):
                        with self._lock:
                            report.vanished += 1
                    else:
                        self._fail(report, o.key, e)
                    continue
                writer.add(o.key, done.etag, done.size)
                with self._lock:
                    report.copied += 1
                    report.bytes_copied += done.size
                progress(done.size)
                if self.after_object:
                    self.after_object(o.key)
        except BaseException as e:  # an interrupt from the hook, or a bug: stop everything
            errors.append(e)
            self._stop.set()

    def _fail(self, report: CopyReport, key: str, e: BaseException) -> None:
        with self._lock:
            report.failed += 1
            if len(report.failures) < KEEP_FAILURES:
                report.failures[key] = explain(e, self.source if not isinstance(
                    e, ClientError) or e.operation_name not in (
                    "PutObject", "UploadPart", "CreateMultipartUpload",
                    "CompleteMultipartUpload") else self.target)

    # -- the final verify pass ----------------------------------------------------------
    def verify(self, progress: Callable[[int], None] = lambda n: None) -> VerifyReport:
        """List the source range by range and the target beside it; every source object must
        be on the target with its size and its checksum (the ETag when it is the same MD5,
        else the freehold-md5 / freehold-source-etag metadata the copy wrote)."""
        rep = VerifyReport()
        t0 = time.monotonic()
        todo = RangeQueue(self.partition(self.src, self.source))
        errors: list[BaseException] = []

        def reraise(_: Range, e: Exception) -> None:
            raise e

        def work() -> None:
            src, dst = self._lister(self.src, self.source), self._lister(self.dst, self.target)
            try:
                for page in claimed_pages(src, self.source.prefix, todo, reraise,
                                          self._stop.is_set):
                    self._verify_page(dst, page, rep)
                    progress(len(page))
            except BaseException as e:
                errors.append(e)
                self._stop.set()

        threads = [threading.Thread(target=work, daemon=True) for _ in range(self.listers)]
        for t in threads:
            t.start()
        _join(threads)
        rep.retries = self.retry_count.n
        rep.seconds = time.monotonic() - t0
        if errors:
            e = errors[0]
            if isinstance(e, S3_ERRORS):
                raise MigrateError(explain(e, self.target)) from None
            raise e
        return rep

    def _verify_page(self, dst: Lister, page: list[SourceObject], rep: VerifyReport) -> None:
        want = {target_key(o.key, self.source, self.target): o for o in page}
        first, last = min(want), max(want)
        seen: dict[str, SourceObject] = {}
        for tpage in range_pages(dst, self.target.prefix, (_before(first), last)):
            seen.update((o.key, o) for o in tpage if o.key in want)
        problems = []
        for tkey, o in want.items():
            t = seen.get(tkey)
            if t is None:
                problems.append(("missing", f"{o.key}: missing on the target ({tkey})"))
            elif t.size != o.size:
                problems.append(("mismatched", f"{o.key}: target holds {t.size} bytes, source "
                                               f"{o.size}"))
            elif t.etag != o.etag:
                head = self._retrying(lambda k=tkey: self.dst.head_object(  # type: ignore[misc]
                    Bucket=self.target.bucket, Key=k))
                meta = head.get("Metadata", {})
                md5_ok = not is_md5(t.etag) or meta.get(MD5_META) in (None, t.etag)
                if meta.get(ETAG_META) != o.etag or not md5_ok:
                    problems.append(("mismatched", f"{o.key}: target checksum {t.etag} "
                                     f"({meta}) does not match source ETag {o.etag}"))
        with self._lock:
            rep.checked += len(want)
            for kind, line in problems:
                setattr(rep, kind, getattr(rep, kind) + 1)
                if len(rep.problems) < KEEP_FAILURES:
                    rep.problems.append(line)


def _before(key: str) -> str | None:
    """A string just below `key` in S3 order (the StartAfter that lists `key` first)."""
    if not key:
        return None
    c = ord(key[-1]) - 1
    c = 0xD7FF if 0xD800 <= c <= 0xDFFF else c  # no surrogates: they have no UTF-8
    return key[:-1] + (chr(c) + "\U0010ffff" if c >= 0 else "") or None


def _put(q: queue.Queue[T], item: T, stop: threading.Event) -> bool:
    """Put on a bounded queue, giving up when `stop` is set; True when put."""
    while not stop.is_set():  # bounded by the consumers or by `stop`
        with contextlib.suppress(queue.Full):
            q.put(item, timeout=0.2)
            return True
    return False


def _join(threads: list[threading.Thread]) -> None:
    """Wait for the threads (in short slices, so Ctrl-C reaches the main thread)."""
    for t in threads:
        while t.is_alive():
            t.join(0.2)


def iter_keys(copier: ObjectCopier) -> Iterator[SourceObject]:
    """Every source object, range by range (tests and benchmarks)."""
    lister = copier._lister(copier.src, copier.source)
    for rng in copier.partition(copier.src, copier.source):
        for page in range_pages(lister, copier.source.prefix, rng):
            yield from page
