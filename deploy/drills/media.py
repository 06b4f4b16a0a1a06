"""Images through a media server's loss: uploaded through the public API (POST /api/v1/media,
as the app's clients do) before and during the fault, read back (their URL through the same
virtual IP) while it lasts, and every acknowledged one fetched after the restore: the same
bytes (SHA-256) or the image is counted lost."""

from __future__ import annotations

import hashlib
import secrets
import ssl
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from freehold.deploy.drills.accounts import DrillAccount, write
from freehold.deploy.drills.events import NO_ANSWER, Event
from freehold.deploy.drills.traffic import MAX_RUN_S, TIMEOUT, RequestThreads

# One upload per site every this many seconds: the drill's writers already send ~545 writes a
# minute from this address and the app allows 600 (rl_write_per_ip): 3 sites add 30
UPLOAD_EVERY_S = 6.0
READ_EVERY_S = 1.0
UPLOAD, IMAGE = "upload", "image"  # Event kinds: an upload, a read of an uploaded image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(note: bytes) -> bytes:
    """A valid 1×1 PNG carrying `note` in a tEXt chunk: every upload's bytes differ."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"tEXt", b"drill\x00" + note)
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Upload:
    """An acknowledged image: where it is served and the checksum of what was sent."""

    site: str
    t: float
    url: str
    sha256: str


def absolute(base: str, url: str) -> str:
    """The media URL the app answered (its own /media/ path, or a CDN's absolute URL)."""
    return url if url.startswith(("http://", "https://")) else f"{base}{url}"


def upload(client: httpx.Client, base: str, account: DrillAccount, label: str
           ) -> tuple[int, Upload | None]:
    """One image uploaded: (status, the Upload when acknowledged). NO_ANSWER without answer."""
    data = png(f"{label} {secrets.token_hex(8)}".encode())
    try:
        r = client.post(f"{base}/api/v1/media", headers=account.headers,
                        files={"file": ("drill.png", data, "image/png")})
    except httpx.HTTPError:
        return NO_ANSWER, None
    if r.status_code != 201:
        return r.status_code, None
    try:
        url = absolute(base, str(r.json()["url"]))
    except (ValueError, KeyError):
        return r.status_code, None
    return r.status_code, Upload("", time.time(), url, sha256(data))


def fetch(client: httpx.Client, url: str) -> tuple[int, str | None]:
    """(status, SHA-256 of the body when 200) of one image read."""
    try:
        r = client.get(url)
    except httpx.HTTPError:
        return NO_ANSWER, None
    return r.status_code, sha256(r.content) if r.status_code == 200 else None


class MediaTraffic(RequestThreads):
    """Per site one thread uploading an image every UPLOAD_EVERY_S and reading one already
    acknowledged every READ_EVERY_S (the newest and older ones in turn), one Event each; a read
    answering other bytes than were sent is counted in `wrong_reads` (its Event keeps 200)."""

    def __init__(self, bases: dict[str, str], uploaders: dict[str, DrillAccount],
                 verify: ssl.SSLContext | bool, label: str,
                 upload_every: float = UPLOAD_EVERY_S, read_every: float = READ_EVERY_S
                 ) -> None:
        super().__init__()
        self.bases, self.uploaders, self.verify, self.label = bases, uploaders, verify, label
        self.upload_every, self.read_every = upload_every, read_every
        self.uploads: list[Upload] = []
        self.wrong_reads: list[tuple[float, str]] = []

    def seed(self) -> None:
        """One image per site acknowledged before the traffic starts (retried, bounded): the
        fault always has images from before it to lose."""
        for site, base in sorted(self.bases.items()):
            data = png(f"{self.label} seed {site}".encode())
            with httpx.Client(verify=self.verify, timeout=TIMEOUT) as client:
                r = write(client, "POST", f"{base}/api/v1/media",
                          self.uploaders[site].headers, f"{base}: uploading an image",
                          files={"file": ("drill.png", data, "image/png")})
            self.uploads.append(Upload(site, time.time(), absolute(base, str(r.json()["url"])),
                                       sha256(data)))

    def start(self) -> None:
        deadline = time.monotonic() + MAX_RUN_S
        for site in sorted(self.bases):
            t = threading.Thread(target=self._loop, args=(site, deadline), daemon=True,
                                 name=f"drill-media-{site}")
            self._threads.append(t)
            t.start()

    def _loop(self, site: str, deadline: float) -> None:
        base = self.bases[site]
        client = httpx.Client(verify=self.verify, timeout=TIMEOUT)  # a failed connection is
        # dropped from its pool by httpx: the next request opens a new one
        next_upload = time.monotonic()
        n = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                due = time.monotonic() + self.read_every
                if time.monotonic() >= next_upload:
                    next_upload += self.upload_every
                    t0 = time.time()
                    status, up = upload(client, base, self.uploaders[site],
                                        f"{self.label} {site}")
                    self._record(Event(t0, time.time(), site, UPLOAD, status), up, site)
                with self._lock:
                    mine = [u for u in self.uploads if u.site == site]
                if mine:
                    n += 1
                    target = mine[-1] if n % 2 else mine[(n // 2) % len(mine)]
                    t0 = time.time()
                    status, digest = fetch(client, target.url)
                    self._record(Event(t0, time.time(), site, IMAGE, status), None, site)
                    if digest is not None and digest != target.sha256:
                        with self._lock:
                            self.wrong_reads.append((t0, target.url))
                self._stop.wait(max(0.0, due - time.monotonic()))
        finally:
            client.close()

    def _record(self, event: Event, up: Upload | None, site: str) -> None:
        with self._lock:
            self.events.append(event)
            if up is not None:
                self.uploads.append(Upload(site, up.t, up.url, up.sha256))


@dataclass
class ImageCheck:
    """Every acknowledged image read back after the restore."""

    uploads: int
    before_fault: int
    during_fault: int
    wrong: list[str] = field(default_factory=list)  # other bytes than were sent
    unreadable: list[str] = field(default_factory=list)  # no 200 within the bound
    fault_reads: dict[str, int] = field(default_factory=dict)  # reads during the fault
    fault_uploads: dict[str, int] = field(default_factory=dict)  # uploads during the fault

    @property
    def ok(self) -> bool:
        return self.before_fault > 0 and not self.wrong and not self.unreadable

    def summary(self) -> str:
        if self.before_fault == 0:
            return "no image was acknowledged before the fault: nothing was at risk"
        if self.ok:
            return f"all {self.uploads} images read back with their bytes"
        return (f"of {self.uploads} images {len(self.unreadable)} unreadable, "
                f"{len(self.wrong)} with other bytes")

    def to_doc(self) -> dict[str, Any]:
        return {"ok": self.ok, "uploads": self.uploads, "before_fault": self.before_fault,
                "during_fault": self.during_fault, "wrong": self.wrong,
                "unreadable": self.unreadable, "reads_during_fault": self.fault_reads,
                "uploads_during_fault": self.fault_uploads, "summary": self.summary()}


def window_counts(events: list[Event], kind: str, start: float, end: float) -> dict[str, int]:
    sent = [e for e in events if e.kind == kind and start <= e.t0 <= end]
    return {"ok": sum(1 for e in sent if e.ok), "failed": sum(1 for e in sent if not e.ok)}


def verify_images(uploads: list[Upload], verify: ssl.SSLContext | bool, fault_start: float,
                  fault_end: float, events: list[Event], wrong_reads: int = 0,
                  limit_s: float = 120.0) -> ImageCheck:
    """Fetches every acknowledged image (four at a time) until it answers 200 or the bound
    passes, and compares its checksum. A 404 is retried too: the app answers 404 for any error
    of its media store (app.services.media.MediaStore.get), a store still recovering included."""
    deadline = time.monotonic() + limit_s
    lock = threading.Lock()
    check = ImageCheck(len(uploads), sum(1 for u in uploads if u.t < fault_start),
                       sum(1 for u in uploads if fault_start <= u.t <= fault_end),
                       fault_reads={**window_counts(events, IMAGE, fault_start, fault_end),
                                    "wrong_bytes": wrong_reads},
                       fault_uploads=window_counts(events, UPLOAD, fault_start, fault_end))

    def one(client: httpx.Client, up: Upload) -> None:
        while True:
            status, digest = fetch(client, up.url)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        with lock:
            if status != 200:
                check.unreadable.append(up.url)
            elif digest != up.sha256:
                check.wrong.append(up.url)

    def run(chunk: list[Upload]) -> None:
        with httpx.Client(verify=verify, timeout=TIMEOUT) as client:
            for up in chunk:
                one(client, up)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, [uploads[i::4] for i in range(4)]))
    check.wrong.sort()
    check.unreadable.sort()
    return check
