"""A lean S3 client for the copy's hot requests: SigV4 over a urllib3 connection pool.

botocore spends about a millisecond of CPU on every call (events, validation, serialisation,
parsing: a ListObjectsV2 page of 1,000 keys costs ~40 ms, most of it parsing LastModified dates
the copy never reads), under the GIL: for 50 KB images that, not the network, caps a copy at a
few hundred objects a second. This sends the requests the copy repeats (GetObject, PutObject,
UploadPart, ListObjectsV2) directly, path-style, signed by botocore's S3 SigV4 signer. Bodies
go with Content-MD5, which the store checks, and are not signed (UNSIGNED-PAYLOAD, the signed
Content-MD5 header covers them: no SHA-256 pass over every byte). It takes its endpoint and
region from a boto3 client and its credentials (refreshed ones included) from the boto3
session; answers it does not expect (a redirect, a refused signature, a malformed request)
raise `Unsupported`, and the copy then uses boto3 for that store from then on (which handles
them or reports them).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, unquote_plus, urlparse

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError

from freehold.deploy.migrate.listing import Page, SourceObject

ERR_CODE = re.compile(rb"<Code>([^<]*)</Code>")
ERR_MSG = re.compile(rb"<Message>([^<]*)</Message>")
# answers that mean "this store wants something this client does not do"
UNSUPPORTED = {301, 307, 400, 403, 501}
OPS = {"GET": "GetObject", "PUT": "PutObject", "LIST": "ListObjectsV2", "PART": "UploadPart"}
# the signer's switch for UNSIGNED-PAYLOAD (botocore's documented s3 config option)
UNSIGNED = {"client_config": Config(s3={"payload_signing_enabled": False})}


class Unsupported(Exception):
    """The store answered in a way only boto3 handles (region redirect, other auth)."""


def q(value: str) -> str:
    """A query-string value, URI-encoded as SigV4 wants it."""
    return quote(value, safe="-_.~")


class FastS3:
    """GET, PUT, part upload and listing for the store boto3 client `c` talks to, signed with
    `credentials` (botocore Credentials: the boto3 session's `get_credentials()`)."""

    def __init__(self, c: Any, credentials: Any, pool: int = 32) -> None:
        u = urlparse(c.meta.endpoint_url)
        self.scheme, self.host = u.scheme, u.netloc
        self.base = u.path.rstrip("/")
        self.region = c.meta.region_name or "us-east-1"
        self._creds = credentials
        timeout = urllib3.Timeout(connect=5.0, read=60.0)
        cls = urllib3.HTTPSConnectionPool if self.scheme == "https" else urllib3.HTTPConnectionPool
        self.http = cls(u.hostname, u.port, maxsize=pool, block=True, timeout=timeout,
                        retries=False)

    def _request(self, op: str, bucket: str, key: str, body: bytes | memoryview | None = None,
                 headers: dict[str, str] | None = None,
                 query: str = "") -> urllib3.BaseHTTPResponse:
        # signed by botocore's own S3 SigV4 signer (the one boto3 uses), only the transport is
        # ours
        path = f"{self.base}/{quote(bucket, safe='')}"
        if key:
            path += f"/{quote(key, safe='/~')}"
        if query:
            path += f"?{query}"
        method = "PUT" if op in ("PUT", "PART") else "GET"
        req = AWSRequest(method=method, url=f"{self.scheme}://{self.host}{path}", data=body,
                         headers=headers or {})
        if body is not None:
            req.context.update(UNSIGNED)
        S3SigV4Auth(self._creds.get_frozen_credentials(), "s3", self.region).add_auth(req)
        h = dict(req.headers.items())
        try:
            r = self.http.urlopen(method, path, body=body, headers=h, preload_content=True,
                                  assert_same_host=False)
        except urllib3.exceptions.HTTPError as e:  # resets, timeouts: retried by the copier
            raise ConnectionError(f"{method} {key or bucket}: {e}") from None
        if r.status >= 300:
            self._raise(r, op, key or bucket)
        return r

    def _raise(self, r: urllib3.BaseHTTPResponse, op: str, what: str) -> None:
        data = r.data or b""
        m = ERR_CODE.search(data)
        code = m.group(1).decode() if m else str(r.status)
        if r.status in UNSUPPORTED and code not in ("BadDigest", "InvalidDigest"):
            raise Unsupported(f"{OPS[op]} {what}: HTTP {r.status} {code}")
        msg = ERR_MSG.search(data)
        raise ClientError({"Error": {"Code": code, "Message": msg.group(1).decode() if msg
                                     else f"HTTP {r.status}"},
                           "ResponseMetadata": {"HTTPStatusCode": r.status}}, OPS[op])

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

    def put_part(self, bucket: str, key: str, upload_id: str, n: int,
                 body: bytes | memoryview, md5_b64: str) -> str:
        """UploadPart with Content-MD5; the part's ETag as the store answers it."""
        headers = {"content-md5": md5_b64, "content-length": str(len(body))}
        r = self._request("PART", bucket, key, body, headers,
                          query=f"partNumber={n}&uploadId={q(upload_id)}")
        return r.headers.get("ETag", "")

    def list(self, bucket: str, prefix: str, start_after: str, delimiter: str,
             max_keys: int) -> Page:
        """One ListObjectsV2 page (keys URL-encoded on the wire, as boto3 asks for them)."""
        args = {"list-type": "2", "encoding-type": "url", "max-keys": str(max_keys),
                "prefix": prefix}
        if start_after:
            args["start-after"] = start_after
        if delimiter:
            args["delimiter"] = delimiter
        query = "&".join(f"{k}={q(v)}" for k, v in sorted(args.items()))
        r = self._request("LIST", bucket, "", query=query)
        return parse_list(r.data)


def parse_list(data: bytes) -> Page:
    """A ListObjectsV2 answer: objects (key, size, ETag), common prefixes, truncated."""
    root = ET.fromstring(data)  # expat bounds entity expansion
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{ns}ListBucketResult":
        raise ClientError({"Error": {"Code": root.findtext(f"{ns}Code") or "Malformed",
                                     "Message": root.findtext(f"{ns}Message") or root.tag}},
                          "ListObjectsV2")
    url = root.findtext(f"{ns}EncodingType") == "url"
    dec = unquote_plus if url else str
    k, s, e = f"{ns}Key", f"{ns}Size", f"{ns}ETag"
    objects = [SourceObject(dec(c.findtext(k) or ""), int(c.findtext(s) or 0),
                            (c.findtext(e) or "").strip('"'))
               for c in root.iterfind(f"{ns}Contents")]
    prefixes = [dec(p.findtext(f"{ns}Prefix") or "") for p in root.iterfind(f"{ns}CommonPrefixes")]
    return Page(objects, prefixes, root.findtext(f"{ns}IsTruncated") == "true")
