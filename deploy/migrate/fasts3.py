"""A lean S3 GetObject / PutObject for small objects: SigV4 over a urllib3 connection pool.

botocore spends about a millisecond of CPU on every call (events, validation, serialisation,
parsing), under the GIL: for 50 KB images that, not the network, caps a copy at a few hundred
objects a second. This sends the two requests the small-object path needs directly (path-style, with
Content-MD5, which the store checks), signed by botocore's S3 SigV4 signer. It takes
its endpoint, region and credentials (refreshed ones included) from a boto3 client; answers it
does not expect (a redirect, a refused signature, a malformed request) raise `Unsupported`, and
the transfer then uses boto3 for that store from then on (which handles them or reports them).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlparse

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

ERR_CODE = re.compile(rb"<Code>([^<]*)</Code>")
ERR_MSG = re.compile(rb"<Message>([^<]*)</Message>")
# answers that mean "this store wants something this client does not do"
UNSUPPORTED = {301, 307, 400, 403, 501}


class Unsupported(Exception):
    """The store answered in a way only boto3 handles (region redirect, other auth)."""


class FastS3:
    """GET and PUT of whole objects for the store a boto3 client `c` talks to."""

    def __init__(self, c: Any, pool: int = 32) -> None:
        u = urlparse(c.meta.endpoint_url)
        self.scheme, self.host = u.scheme, u.netloc
        self.base = u.path.rstrip("/")
        self.region = c.meta.region_name or "us-east-1"
        self._creds = c._request_signer._credentials  # noqa: SLF001 - refreshable credentials
        timeout = urllib3.Timeout(connect=5.0, read=60.0)
        cls = urllib3.HTTPSConnectionPool if self.scheme == "https" else urllib3.HTTPConnectionPool
        self.http = cls(u.hostname, u.port, maxsize=pool, block=True, timeout=timeout,
                        retries=False)

    def _request(self, method: str, bucket: str, key: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        # signed by botocore's own S3 SigV4 signer (the one boto3 uses), only the transport is
        # ours; without TLS it signs the payload's SHA-256 as well
        path = f"{self.base}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        req = AWSRequest(method=method, url=f"{self.scheme}://{self.host}{path}", data=body,
                         headers=headers or {})
        S3SigV4Auth(self._creds.get_frozen_credentials(), "s3", self.region).add_auth(req)
        h = dict(req.headers.items())
        try:
            r = self.http.urlopen(method, path, body=body, headers=h, preload_content=True,
                                  assert_same_host=False)
        except urllib3.exceptions.HTTPError as e:  # resets, timeouts: retried by the copier
            raise ConnectionError(f"{method} {key}: {e}") from None
        if r.status >= 300:
            self._raise(r, method, key)
        return r

    def _raise(self, r: urllib3.BaseHTTPResponse, method: str, key: str) -> None:
        data = r.data or b""
        m = ERR_CODE.search(data)
        code = m.group(1).decode() if m else str(r.status)
        if r.status in UNSUPPORTED and code not in ("BadDigest", "InvalidDigest"):
            raise Unsupported(f"{method} {key}: HTTP {r.status} {code}")
        msg = ERR_MSG.search(data)
        op = "GetObject" if method == "GET" else "PutObject"
        raise ClientError({"Error": {"Code": code, "Message": msg.group(1).decode() if msg
                                     else f"HTTP {r.status}"},
                           "ResponseMetadata": {"HTTPStatusCode": r.status}}, op)

    def get(self, bucket: str, key: str) -> tuple[bytes, str, int]:
        """(body, ETag, Content-Length) of an object."""
        r = self._request("GET", bucket, key)
        return r.data, r.headers.get("ETag", "").strip('"'), int(
            r.headers.get("Content-Length", len(r.data)))

    def put(self, bucket: str, key: str, body: bytes, md5_b64: str,
            meta: dict[str, str]) -> str:
        """PUT with Content-MD5 and metadata; the ETag the store answers."""
        headers = {"content-md5": md5_b64, "content-length": str(len(body)),
                   **{f"x-amz-meta-{k}": v for k, v in meta.items()}}
        r = self._request("PUT", bucket, key, body, headers)
        return r.headers.get("ETag", "").strip('"')
