"""Images in S3-compatible object storage (SeaweedFS in tests and the lab) through boto3.

boto3 is blocking: calls run in a worker thread. Only JPEG, PNG, GIF and WebP are accepted, by
their magic bytes (the declared content type is not trusted).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from freehold.app.ids import new_id
from freehold.app.services.errors import Invalid, NotFound
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


@dataclass
class MediaStore:
    client: Any
    bucket: str

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaStore:
        cfg = Config(request_checksum_calculation="when_required",
                     response_checksum_validation="when_required",
                     retries={"max_attempts": 3, "mode": "standard"},
                     s3={"addressing_style": "path"})
        client = boto3.client("s3", endpoint_url=settings.s3_endpoint,
                              aws_access_key_id=settings.s3_access_key,
                              aws_secret_access_key=settings.s3_secret_key,
                              region_name=settings.s3_region, config=cfg)
        return cls(client=client, bucket=settings.s3_bucket)

    def ensure_bucket_sync(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    async def ensure_bucket(self) -> None:
        await asyncio.to_thread(self.ensure_bucket_sync)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=key, Body=data,
                                ContentType=content_type)

    async def get(self, key: str) -> bytes:
        def _get() -> bytes:
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                raise NotFound("no such media") from exc
            return bytes(obj["Body"].read())

        return await asyncio.to_thread(_get)

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
