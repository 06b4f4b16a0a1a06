"""boto3 S3 clients for AWS, moto and self-hosted SeaweedFS, and S3 location parsing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from freehold.deploy.migrate import MigrateError

SEAWEED_S3_PORT = 8333


@dataclass
class S3Location:
    bucket: str
    prefix: str = ""
    endpoint: str | None = None  # None: AWS (or AWS_ENDPOINT_URL)
    access_key: str | None = None
    secret_key: str | None = None
    profile: str | None = None
    region: str = "us-east-1"

    def describe(self) -> str:
        where = self.endpoint or "aws"
        return f"s3://{self.bucket}/{self.prefix} at {where}"


def parse_location(text: str, endpoint: str | None = None) -> S3Location:
    """`s3://bucket[/prefix]` (AWS or `endpoint`) or `http(s)://host:port/bucket[/prefix]`."""
    u = urlparse(text)
    if u.scheme == "s3":
        if not u.netloc:
            raise MigrateError(f"{text}: no bucket name — write s3://BUCKET[/prefix]")
        return S3Location(bucket=u.netloc, prefix=u.path.lstrip("/"), endpoint=endpoint)
    if u.scheme in ("http", "https"):
        parts = u.path.lstrip("/").split("/", 1)
        if not parts[0]:
            raise MigrateError(f"{text}: no bucket in the URL — write http://HOST:PORT/BUCKET")
        return S3Location(bucket=parts[0], prefix=parts[1] if len(parts) > 1 else "",
                          endpoint=f"{u.scheme}://{u.netloc}")
    raise MigrateError(
        f"{text}: not an S3 location — write s3://BUCKET[/prefix] or http://HOST:PORT/BUCKET"
    )


def session(loc: S3Location) -> Any:
    """The boto3 session of a location: its profile, or its explicit keys, or the default
    chain (`session(loc).get_credentials()`: the credentials its clients sign with)."""
    if loc.access_key:
        return boto3.session.Session(aws_access_key_id=loc.access_key,
                                     aws_secret_access_key=loc.secret_key)
    return boto3.session.Session(profile_name=loc.profile if loc.profile else None)


def client(loc: S3Location, max_pool: int = 32, attempts: int = 3,
           mode: str = "standard", sign_payload: bool = True) -> Any:
    """An S3 client; checksums only when required (self-hosted stores reject the defaults).
    `attempts` and `mode` are botocore's retries (the copier uses "adaptive": a throttled
    client slows itself down, then retries with jittered backoff). `sign_payload=False`:
    bodies are not hashed into the signature (UNSIGNED-PAYLOAD, also over plain HTTP), for
    callers that send every body with Content-MD5, which the store checks."""
    s3cfg: dict[str, Any] = {"addressing_style": "path"}
    if not sign_payload:
        s3cfg["payload_signing_enabled"] = False
    cfg = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": attempts, "mode": mode},
        max_pool_connections=max_pool,
        connect_timeout=5,
        read_timeout=60,
        s3=s3cfg,
    )
    kwargs: dict[str, Any] = {"config": cfg, "region_name": loc.region}
    endpoint = loc.endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return session(loc).client("s3", **kwargs)
