"""Parallel, resumable, verified S3 → S3 object copy with a checkpoint file."""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from freehold.deploy.atomic import write_json as atomic_write_json
from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.s3client import S3Location, client
from freehold.deploy.migrate.state import read_json

SINGLE_PUT_MAX = 16 * 1024 * 1024
SPOOL_MAX = 8 * 1024 * 1024
READ_CHUNK = 1024 * 1024
MD5_META = "freehold-md5"


@dataclass
class SourceObject:
    key: str
    size: int
    etag: str


@dataclass
class CopyReport:
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_copied: int = 0
    seconds: float = 0.0
    planned_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"copied": len(self.copied), "skipped": len(self.skipped),
                "failed": len(self.failed), "failures": self.failed,
                "bytes_copied": self.bytes_copied, "seconds": round(self.seconds, 3)}


def explain(e: Exception, loc: S3Location) -> str:
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


def _listed(s3: Any, loc: S3Location) -> list[SourceObject]:
    """Every object under the location's prefix; MigrateError naming the location on an S3
    error (a bug is raised as itself)."""
    try:
        return list(list_objects(s3, loc))
    except S3_ERRORS as e:
        raise MigrateError(explain(e, loc)) from None


def list_objects(s3: Any, loc: S3Location) -> Iterator[SourceObject]:
    """Every object under the prefix, page by page (1,000 keys a page)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix)
    for page in pages:
        for o in page.get("Contents", []):
            yield SourceObject(o["Key"], int(o["Size"]), o["ETag"].strip('"'))


def multipart_etag(part_md5s: list[bytes]) -> str:
    return hashlib.md5(b"".join(part_md5s)).hexdigest() + f"-{len(part_md5s)}"


class _Hasher:
    """MD5 of the whole body and of each part (for a multipart ETag) while streaming."""

    def __init__(self, part_size: int | None) -> None:
        self.whole = hashlib.md5()
        self.part_size = part_size
        self.parts: list[bytes] = []
        self._part = hashlib.md5()
        self._in_part = 0

    def update(self, data: bytes) -> None:
        self.whole.update(data)
        if not self.part_size:
            return
        view = memoryview(data)
        while len(view):
            room = self.part_size - self._in_part
            chunk = view[:room]
            self._part.update(chunk)
            self._in_part += len(chunk)
            view = view[len(chunk):]
            if self._in_part == self.part_size:
                self.parts.append(self._part.digest())
                self._part, self._in_part = hashlib.md5(), 0

    def finish(self) -> None:
        if self.part_size and self._in_part:
            self.parts.append(self._part.digest())


def target_key(src_key: str, source: S3Location, target: S3Location) -> str:
    rel = src_key[len(source.prefix):].lstrip("/") if source.prefix else src_key
    return f"{target.prefix.rstrip('/')}/{rel}" if target.prefix else rel


class ObjectCopier:
    """Copies `source` to `target`; `checkpoint` records each verified object."""

    def __init__(self, source: S3Location, target: S3Location, checkpoint: Path,
                 workers: int = 8, retries: int = 4, backoff: float = 0.2) -> None:
        self.source, self.target, self.checkpoint = source, target, checkpoint
        self.workers, self.retries, self.backoff = workers, retries, backoff
        self.src = client(source, max_pool=workers * 2)
        self.dst = client(target, max_pool=workers * 2)
        doc = read_json(checkpoint, None) or {}
        self.done: dict[str, dict[str, Any]] = doc.get("done", {})
        self._lock = threading.Lock()
        self._last_flush = 0.0
        self.after_object: Callable[[str], None] | None = None  # hook: tests interrupt here

    # -- checkpoint -------------------------------------------------------------------
    def flush(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_flush < 0.5:
                return
            self._last_flush = now
            doc = {"source": self.source.describe(), "target": self.target.describe(),
                   "done": dict(self.done)}
        atomic_write_json(self.checkpoint, doc)

    # -- planning ---------------------------------------------------------------------
    def check_access(self) -> None:
        for s3, loc in ((self.src, self.source), (self.dst, self.target)):
            try:
                s3.head_bucket(Bucket=loc.bucket)
            except S3_ERRORS as e:
                raise MigrateError(explain(e, loc)) from None

    def plan(self) -> tuple[list[SourceObject], list[SourceObject]]:
        """(to copy, to skip): skip what the checkpoint and the target both hold unchanged."""
        sources = _listed(self.src, self.source)
        present = {o.key: o.size for o in _listed(self.dst, self.target)}
        todo, skip = [], []
        for o in sources:
            rec = self.done.get(o.key)
            tkey = target_key(o.key, self.source, self.target)
            if (rec and rec.get("etag") == o.etag and rec.get("size") == o.size
                    and present.get(tkey) == o.size):
                skip.append(o)
            else:
                todo.append(o)
        return todo, skip

    # -- one object -------------------------------------------------------------------
    def _source_part_size(self, o: SourceObject) -> int | None:
        if "-" not in o.etag:
            return None
        head = self.src.head_object(Bucket=self.source.bucket, Key=o.key, PartNumber=1)
        return int(head["ContentLength"])

    def copy_one(self, o: SourceObject, progress: Callable[[int], None]) -> None:
        part_size = self._source_part_size(o)
        hasher = _Hasher(part_size)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX) as buf:
            body = self.src.get_object(Bucket=self.source.bucket, Key=o.key)["Body"]
            got = 0
            for chunk in iter(lambda: body.read(READ_CHUNK), b""):
                hasher.update(chunk)
                buf.write(chunk)
                got += len(chunk)
            hasher.finish()
            md5 = hasher.whole.hexdigest()
            if got != o.size:
                raise OSError(f"read {got} bytes of {o.size}")
            expect = multipart_etag(hasher.parts) if part_size else md5
            if expect != o.etag:
                raise OSError(f"checksum mismatch reading source (ETag {o.etag}, got {expect})")
            buf.seek(0)
            tkey = target_key(o.key, self.source, self.target)
            meta = {MD5_META: md5}
            if o.size <= SINGLE_PUT_MAX:
                self.dst.put_object(Bucket=self.target.bucket, Key=tkey, Body=buf.read(),
                                    Metadata=meta)
            else:
                cfg = TransferConfig(multipart_threshold=SINGLE_PUT_MAX,
                                     multipart_chunksize=SINGLE_PUT_MAX, use_threads=False)
                self.dst.upload_fileobj(buf, self.target.bucket, tkey, Config=cfg,
                                        ExtraArgs={"Metadata": meta})
        head = self.dst.head_object(Bucket=self.target.bucket, Key=tkey)
        if int(head["ContentLength"]) != o.size:
            raise OSError(f"target holds {head['ContentLength']} bytes, source {o.size}")
        stored = head.get("Metadata", {}).get(MD5_META)
        etag = head["ETag"].strip('"')
        if stored != md5 or ("-" not in etag and etag != md5):
            raise OSError(f"target checksum {etag}/{stored} differs from source md5 {md5}")
        progress(o.size)
        with self._lock:
            self.done[o.key] = {"etag": o.etag, "size": o.size, "md5": md5}

    def _with_retries(self, o: SourceObject, progress: Callable[[int], None]) -> None:
        for attempt in range(self.retries):
            try:
                self.copy_one(o, progress)
                return
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in ("NoSuchKey", "InvalidObjectState", "AccessDenied") \
                        or attempt == self.retries - 1:
                    raise
            except (OSError, BotoCoreError):
                if attempt == self.retries - 1:
                    raise
            time.sleep(min(self.backoff * 2 ** attempt, 5.0))

    # -- all --------------------------------------------------------------------------
    def run(self, todo: list[SourceObject], skip: list[SourceObject],
            progress: Callable[[int], None] = lambda n: None) -> CopyReport:
        report = CopyReport(skipped=[o.key for o in skip],
                            planned_bytes=sum(o.size for o in todo))
        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                pending: dict[Future[None], SourceObject] = {}
                queue = iter(todo)
                for o in queue:  # keep at most 2×workers in flight: bounded memory
                    pending[pool.submit(self._with_retries, o, progress)] = o
                    if len(pending) >= self.workers * 2:
                        self._collect(pending, report, block=True)
                while pending:
                    self._collect(pending, report, block=True)
        finally:
            self.flush(force=True)
            report.seconds = time.monotonic() - t0
        return report

    def _collect(self, pending: dict[Future[None], SourceObject], report: CopyReport,
                 block: bool) -> None:
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for fut in finished:
            o = pending.pop(fut)
            err = fut.exception()
            if err is None:
                report.copied.append(o.key)
                report.bytes_copied += o.size
                self.flush()
                if self.after_object:
                    self.after_object(o.key)
            else:
                report.failed[o.key] = explain(err, self.source)  # type: ignore[arg-type]
