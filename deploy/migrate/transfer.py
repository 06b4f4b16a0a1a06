"""Copy one object, verified, with bounded memory.

Small objects (≤ 16 MiB) are read into memory and PUT with Content-MD5; the ETag the PUT returns
is the target's check (no extra HEAD). Large ones are streamed into a multipart upload, each
part with its Content-MD5, a fixed number in flight in the whole process (`part_slots`), so
memory is bounded by the parts in flight and no object is held whole, in memory or on disk.
Parts are the source's own when it has parts of 5–64 MiB (one MD5 of each part then checks the
source's ETag and is the part's Content-MD5: one pass over the bytes, and the target's ETag is
the source's), else 16 MiB or more. The source ETag (a plain MD5, or the `-N` of a multipart upload:
the MD5 of the parts' MD5s) is checked against what was read. The target keeps the object's MD5
(when known before the upload starts) and the source ETag as metadata for the verify pass.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from freehold.deploy.migrate.fasts3 import FastS3, Unsupported
from freehold.deploy.migrate.listing import SourceObject
from freehold.deploy.migrate.s3client import S3Location

MiB = 1024 * 1024
SMALL_MAX = 16 * MiB
PART_MIN = 16 * MiB
PART_FLOOR = 5 * MiB  # S3's smallest part (but the last)
PART_KEEP_MAX = 64 * MiB  # a source's parts up to this size are kept as they are
MAX_PARTS = 10_000
MD5_META = "freehold-md5"
ETAG_META = "freehold-source-etag"


class Interrupted(Exception):
    """The copy was asked to stop in the middle of a large object (its upload is aborted)."""


def multipart_etag(part_md5s: list[bytes]) -> str:
    return hashlib.md5(b"".join(part_md5s)).hexdigest() + f"-{len(part_md5s)}"


def parts_md5(data: bytes | memoryview, part_size: int) -> list[bytes]:
    view = memoryview(data)
    return [hashlib.md5(view[i:i + part_size]).digest() for i in range(0, len(view), part_size)]


class PartHasher:
    """MD5s of consecutive `part_size` parts of a stream fed in order (a source's multipart
    ETag when its parts are not ours)."""

    def __init__(self, part_size: int) -> None:
        self.part_size, self.parts = part_size, []  # type: ignore[var-annotated]
        self._h, self._in = hashlib.md5(), 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        for _ in range(len(view) // self.part_size + 2):  # bounded: each turn eats a part
            if not len(view):
                return
            chunk = view[:self.part_size - self._in]
            self._h.update(chunk)
            self._in += len(chunk)
            view = view[len(chunk):]
            if self._in == self.part_size:
                self.parts.append(self._h.digest())
                self._h, self._in = hashlib.md5(), 0

    def etag(self) -> str:
        tail = [self._h.digest()] if self._in else []
        return multipart_etag(self.parts + tail)


def is_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower())


def target_key(src_key: str, source: S3Location, target: S3Location) -> str:
    rel = src_key[len(source.prefix):].lstrip("/") if source.prefix else src_key
    return f"{target.prefix.rstrip('/')}/{rel}" if target.prefix else rel


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def read_exact(body: Any, n: int) -> bytes:
    """`n` bytes of a streaming body (fewer only at its end)."""
    chunks, got = [], 0
    for _ in range(n // 65536 + 2):  # bounded: every read returns data or ends the loop
        if got >= n:
            break
        b = body.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass
class Copied:
    etag: str  # the source ETag the copy was verified against
    size: int


class Transfer:
    """Copies objects from `source` to `target` (boto3 clients `src`, `dst`)."""

    def __init__(self, src: Any, dst: Any, source: S3Location, target: S3Location,
                 part_size: int = PART_MIN, part_slots: int = 8,
                 stopped: Callable[[], bool] = lambda: False, fast_src: FastS3 | None = None,
                 fast_dst: FastS3 | None = None) -> None:
        self.src, self.dst, self.source, self.target = src, dst, source, target
        # the lean client (fasts3) until a store answers what only boto3 handles
        self.fast_src, self.fast_dst = fast_src, fast_dst
        self.fallbacks: list[str] = []
        self.part_size = max(PART_MIN, part_size)
        self.slots = threading.BoundedSemaphore(part_slots)
        self.pool = ThreadPoolExecutor(max_workers=part_slots, thread_name_prefix="part")
        self.stopped = stopped

    def fell_back(self, side: str, e: Exception) -> None:
        """The lean client is off for `side` ("source" or "target") from now on."""
        if side == "source":
            self.fast_src = None
        else:
            self.fast_dst = None
        self.fallbacks.append(f"{side}: {e}")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _source_part_size(self, key: str, etag: str, size: int) -> int | None:
        """The source's part size for a multipart ETag (HEAD partNumber=1), None if plain or
        the store does not tell."""
        if "-" not in etag:
            return None
        head = self.src.head_object(Bucket=self.source.bucket, Key=key, PartNumber=1)
        n = int(head["ContentLength"])
        return n if 0 < n < size or etag.endswith("-1") else None

    def copy(self, o: SourceObject) -> Copied:
        if o.size <= SMALL_MAX:
            return self._small(o)
        return self._large(o)

    # -- small: one GET, one PUT -------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, str, int]:
        fast = self.fast_src
        if fast is not None:
            try:
                return fast.get(self.source.bucket, key)
            except Unsupported as e:
                self.fell_back("source", e)
        r = self.src.get_object(Bucket=self.source.bucket, Key=key)
        with r["Body"] as body:
            return body.read(), r["ETag"].strip('"'), int(r["ContentLength"])

    def _put(self, key: str, data: bytes, md5: Any, meta: dict[str, str]) -> str:
        fast = self.fast_dst
        if fast is not None:
            try:
                return fast.put(self.target.bucket, key, data, b64(md5.digest()), meta)
            except Unsupported as e:
                self.fell_back("target", e)
        put = self.dst.put_object(Bucket=self.target.bucket, Key=key, Body=data,
                                  ContentMD5=b64(md5.digest()), Metadata=meta)
        return put.get("ETag", "").strip('"')

    def _small(self, o: SourceObject) -> Copied:
        # the version read may be newer than the listing's: its own ETag is the reference
        data, etag, length = self._get(o.key)
        if len(data) != length:
            raise OSError(f"read {len(data)} bytes of {length}")
        md5 = hashlib.md5(data)
        if "-" in etag:
            psize = self._source_part_size(o.key, etag, len(data))
            candidates = [psize] if psize else [m * MiB for m in range(5, 17)]
            if not any(multipart_etag(parts_md5(data, p)) == etag for p in candidates):
                raise OSError(f"checksum mismatch reading source (ETag {etag})")
        elif is_md5(etag) and md5.hexdigest() != etag:
            raise OSError(f"checksum mismatch reading source (ETag {etag}, got "
                          f"{md5.hexdigest()})")
        tkey = target_key(o.key, self.source, self.target)
        got = self._put(tkey, data, md5, {MD5_META: md5.hexdigest(), ETAG_META: etag})
        if is_md5(got) and got != md5.hexdigest():
            raise OSError(f"target stored ETag {got}, source MD5 {md5.hexdigest()}")
        return Copied(etag, len(data))

    # -- large: a streamed multipart upload ---------------------------------------------
    def target_part_size(self, size: int, src_psize: int | None = None) -> int:
        """The source's part size when it has one S3 takes and memory allows (one MD5 of each
        part then checks the source's ETag and is the target part's Content-MD5, and the
        target's ETag is the source's), else `part_size` or more (at most MAX_PARTS parts)."""
        if (src_psize and PART_FLOOR <= src_psize <= max(self.part_size, PART_KEEP_MAX)
                and size <= src_psize * MAX_PARTS):
            return src_psize
        per = -(-size // MAX_PARTS)
        return max(self.part_size, -(-per // MiB) * MiB)

    def _large(self, o: SourceObject) -> Copied:
        r = self.src.get_object(Bucket=self.source.bucket, Key=o.key)
        etag = r["ETag"].strip('"')
        size = int(r["ContentLength"])
        with r["Body"] as body:
            src_psize = self._source_part_size(o.key, etag, size) if "-" in etag else None
            return self._stream(o, body, etag, size, src_psize)

    def _stream(self, o: SourceObject, body: Any, etag: str, size: int,
                src_psize: int | None) -> Copied:
        psize = self.target_part_size(size, src_psize)
        whole = hashlib.md5() if "-" not in etag else None
        # the source's parts are ours when sizes agree (their MD5s are computed once)
        src_hash = PartHasher(src_psize) if src_psize and src_psize != psize else None
        tkey = target_key(o.key, self.source, self.target)
        meta = {ETAG_META: etag}
        if whole is not None and is_md5(etag):
            meta[MD5_META] = etag  # checked below before the upload completes
        bucket = self.target.bucket
        up = self.dst.create_multipart_upload(Bucket=bucket, Key=tkey, Metadata=meta)
        uid = up["UploadId"]
        futures: list[Future[tuple[bytes, str]]] = []
        try:
            got = 0
            for n in range(1, MAX_PARTS + 1):
                if got >= size:
                    break
                if self.stopped():
                    raise Interrupted(o.key)
                self.slots.acquire()
                try:
                    data = read_exact(body, min(psize, size - got))
                except BaseException:
                    self.slots.release()
                    raise
                if not data:
                    self.slots.release()
                    break
                got += len(data)
                if whole is not None:
                    whole.update(data)
                if src_hash is not None:
                    src_hash.update(data)
                futures.append(self.pool.submit(self._part, bucket, tkey, uid, n, data))
            part_md5s = [f.result()[0] for f in futures]
            etags = [f.result()[1] for f in futures]
            if got != size:
                raise OSError(f"read {got} bytes of {size}")
            if whole is not None and is_md5(etag) and whole.hexdigest() != etag:
                raise OSError(f"checksum mismatch reading source (ETag {etag}, got "
                              f"{whole.hexdigest()})")
            if src_psize:
                read = src_hash.etag() if src_hash is not None else multipart_etag(part_md5s)
                if read != etag:
                    raise OSError(f"checksum mismatch reading source (ETag {etag}, got {read})")
            done = self.dst.complete_multipart_upload(
                Bucket=bucket, Key=tkey, UploadId=uid,
                MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i}
                                           for i, e in enumerate(etags, start=1)]})
        except BaseException:
            for f in futures:
                f.cancel()
            for f in futures:
                if not f.cancelled():
                    f.exception()  # wait: the slots come back before the abort
            with contextlib.suppress(Exception):  # the first error is the one to report
                self.dst.abort_multipart_upload(Bucket=bucket, Key=tkey, UploadId=uid)
            raise
        stored = done.get("ETag", "").strip('"')
        expect = multipart_etag(part_md5s)
        if "-" in stored and is_md5(stored.split("-")[0]) and stored != expect:
            raise OSError(f"target stored ETag {stored}, parts give {expect}")
        return Copied(etag, size)

    def _part(self, bucket: str, key: str, uid: str, n: int, data: bytes) -> tuple[bytes, str]:
        try:
            md5 = hashlib.md5(data).digest()
            fast = self.fast_dst
            if fast is not None:
                try:
                    return md5, fast.put_part(bucket, key, uid, n, data, b64(md5))
                except Unsupported as e:
                    self.fell_back("target", e)
            r = self.dst.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n,
                                     Body=data, ContentMD5=b64(md5))
            return md5, r["ETag"]
        finally:
            self.slots.release()
