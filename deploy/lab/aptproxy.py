"""The lab's shared package cache: a small caching HTTP proxy for apt, one per lab.

Every lab server's apt uses it (`Acquire::http::Proxy`), so a .deb is downloaded once per
machine, not once per server. Package files (immutable: their names carry the version) are
kept in one folder shared by every lab on the machine; indexes (Release, Packages...) always
pass through. A shared /var/cache/apt/archives bind mount would not do: apt locks that folder
for the whole download, so parallel `apt-get install` on several servers would fail.

    python -m freehold.deploy.lab.aptproxy --listen 198.19.255.253 --port 3142 --cache DIR
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

CACHED_SUFFIXES = (".deb", ".udeb", ".ddeb")
CHUNK = 1 << 16
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def cache_path(cache: Path, url: str) -> Path | None:
    """Where a package URL is kept; None for anything not cached (indexes, odd paths)."""
    parts = urlsplit(url)
    path = parts.path
    if not path.endswith(CACHED_SUFFIXES) or ".." in path.split("/") or not parts.hostname:
        return None
    return cache / parts.hostname / path.lstrip("/")


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "freehold-lab-aptproxy"
    cache: Path = Path("/var/cache/freehold-lab/apt")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        url = self.path
        if not url.startswith("http://"):
            self.send_error(400, "absolute http:// URL expected (this is a proxy)")
            return
        target = cache_path(self.cache, url)
        if target is not None and not head:
            with _lock_for(str(target)):       # one download per file, others wait for it
                hit = target.exists()
                if not hit:
                    status = self._fetch_to(url, target)
                    if status != 200:
                        self._relay(url, head)
                        return
            print(f"{'hit' if hit else 'miss'} {url}", flush=True)
            self._send_file(target)
            return
        self._relay(url, head)

    def _upstream(self, url: str, method: str) -> tuple[http.client.HTTPConnection,
                                                       http.client.HTTPResponse]:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=60)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-connection", "connection", "keep-alive", "host")}
        conn.request(method, path, headers=headers)
        return conn, conn.getresponse()

    def _fetch_to(self, url: str, target: Path) -> int:
        """Download a package into the cache (atomic rename); return the upstream status."""
        conn, resp = self._upstream(url, "GET")
        try:
            if resp.status != 200:
                return resp.status
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(resp, out, CHUNK)
                length = resp.getheader("Content-Length")
                if length is not None and os.path.getsize(tmp) != int(length):
                    return 502
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            return 200
        finally:
            conn.close()

    def _send_file(self, path: Path) -> None:
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.debian.binary-package")
        self.send_header("Content-Length", str(size))
        self.send_header("X-Freehold-Cache", "hit")
        self.end_headers()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, self.wfile, CHUNK)

    def _relay(self, url: str, head: bool) -> None:
        try:
            conn, resp = self._upstream(url, "HEAD" if head else "GET")
        except OSError as exc:
            self.send_error(502, f"upstream: {exc}")
            return
        try:
            body = b"" if head else resp.read()
            self.send_response(resp.status, resp.reason)
            for key, value in resp.getheaders():
                if key.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                       "content-length"):
                    self.send_header(key, value)
            length = resp.getheader("Content-Length") if head else str(len(body))
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            if not head:
                self.wfile.write(body)
        finally:
            conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--port", type=int, default=3142)
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    Handler.cache = args.cache
    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
