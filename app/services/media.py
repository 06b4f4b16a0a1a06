"""Images in S3-compatible object storage (SeaweedFS in tests and the lab) through boto3.

boto3 is blocking: calls run in a worker thread. Only JPEG, PNG, GIF and WebP are accepted, by
their magic bytes (the declared content type is not trusted).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from freehold.app.ids import new_id
from freehold.app.services.errors import Invalid, NotFound, ServiceError, Unavailable
from freehold.app.settings import Settings

SIGNATURES: list[tuple[bytes, str, str]] = [
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
]


# content type by file extension, of every kind sniff_image accepts (media keys end in these)
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}


def sniff_image(data: bytes) -> tuple[str, str]:
    """(content type, extension) of an accepted image, or Invalid."""
    for sig, ctype, ext in SIGNATURES:
        if data.startswith(sig):
            return ctype, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    raise Invalid("not an image: upload a JPEG, PNG, GIF or WebP file", field="file")


T = TypeVar("T")

# a media volume server lost or restarting, the S3 gateway answering 5xx: the image is there
# and readable again in seconds (the failover drills' media-kill), so 503 with Retry-After, not
# "no such media" (a user's app would drop the image) nor a 500
MEDIA_RETRY_AFTER_S = 5
MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


def endpoints(setting: str) -> list[str]:
    """The S3 endpoints of `s3_endpoint` (comma-separated), in order."""
    return [u.strip() for u in setting.split(",") if u.strip()]


def store_error(exc: Exception) -> ServiceError:
    """The service error a failed S3 call is answered with."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if str(err.get("Code", "")) in MISSING or status == 404:
            return NotFound("no such media")
        if status and status < 500 and status != 429:
            raise exc  # a request the app got wrong (403, 400 ...): a bug, kept a 500
    return Unavailable("the media store cannot answer for a moment", MEDIA_RETRY_AFTER_S)


@dataclass
class MediaStore:
    """The media bucket through one or more S3 endpoints, nearest first (`s3_endpoint` is a
    comma-separated list: the app's role lists every media server's gateway, its own site's
    first). A call goes to the next endpoint when one cannot answer (its server lost or
    restarting); every gateway's filer holds the same metadata, so each serves every image."""

    clients: list[Any]
    bucket: str

    @property
    def client(self) -> Any:
        return self.clients[0]

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaStore:
        # a gateway whose server lost power answers nothing: fail over to the next in 2 s, not
        # after botocore's 60 s connect timeout times its retries
        cfg = Config(request_checksum_calculation="when_required",
                     response_checksum_validation="when_required",
                     retries={"max_attempts": 2, "mode": "standard"},
                     connect_timeout=2, read_timeout=15,
                     s3={"addressing_style": "path"})
        clients = [boto3.client("s3", endpoint_url=url, aws_access_key_id=settings.s3_access_key,
                                aws_secret_access_key=settings.s3_secret_key,
                                region_name=settings.s3_region, config=cfg)
                   for url in endpoints(settings.s3_endpoint)]
        return cls(clients=clients, bucket=settings.s3_bucket)

    def _each(self, call: Callable[[Any], T]) -> T:
        """`call(client)` on the first endpoint that answers. An object missing at one
        gateway is asked of the next too (another site's filer may not have its metadata
        yet); missing at every gateway that answered is "no such media", and no gateway
        answering is `Unavailable` (503)."""
        errors: list[tuple[ServiceError, Exception]] = []
        for client in self.clients:
            try:
                return call(client)
            except (ClientError, BotoCoreError) as exc:
                errors.append((store_error(exc), exc))
        err, exc = next(((e, x) for e, x in errors if isinstance(e, NotFound)), errors[-1])
        raise err from exc

    def ensure_bucket_sync(self) -> None:
        def ensure(client: Any) -> None:
            try:
                client.head_bucket(Bucket=self.bucket)
            except ClientError:
                client.create_bucket(Bucket=self.bucket)

        self._each(ensure)

    async def ensure_bucket(self) -> None:
        await asyncio.to_thread(self.ensure_bucket_sync)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._each, lambda c: c.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type))

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._each, lambda c: bytes(
            c.get_object(Bucket=self.bucket, Key=key)["Body"].read()))

    async def delete(self, keys: list[str]) -> None:
        def _delete() -> None:
            for i in range(0, len(keys), 1000):
                chunk = keys[i:i + 1000]
                with contextlib.suppress(ClientError):
                    self.client.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})

        if keys:
            await asyncio.to_thread(_delete)

    async def exists(self, key: str) -> bool:
        def _head() -> bool:
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
                return True
            except ClientError:
                return False

        return await asyncio.to_thread(_head)


def new_media_key(kind: str, ext: str) -> tuple[int, str]:
    mid = new_id()
    return mid, f"{kind}/{mid}.{ext}"
