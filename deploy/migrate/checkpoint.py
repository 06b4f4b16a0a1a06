"""The copy's checkpoint: one SQLite file on disk, one row per verified object.

`done(key TEXT PRIMARY KEY, etag BLOB, parts INTEGER, size INTEGER) WITHOUT ROWID`: the source
ETag as its 16 MD5 bytes (`parts` is N of a multipart `-N` ETag, 0 for a plain one; an ETag that
is not hex is stored as the MD5 of its text). WAL mode; rows are committed in batches (every
0.5 s or 5,000 rows) by one writer thread, so a `kill -9` loses at most the last batch: those
objects are copied again and verified, never corrupted. Nothing per key is held in memory: the
listers look up one listed page's key range at a time.

An old JSON checkpoint (`{"done": {key: {"etag", "size"}}}`) is converted in place; the JSON is
kept beside it as `<name>.json-old`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from freehold.deploy.migrate import MigrateError

MAGIC = b"SQLite format 3\x00"
SCHEMA = """
CREATE TABLE IF NOT EXISTS done (key TEXT PRIMARY KEY, etag BLOB NOT NULL,
                                 parts INTEGER NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
BATCH_ROWS = 5000
BATCH_SECONDS = 0.5

Entry = tuple[bytes, int, int]  # (etag blob, parts, size)


def etag_entry(etag: str, size: int) -> Entry:
    """An ETag (and size) as stored: 16 bytes, the part count, the size."""
    md5, _, parts = etag.strip('"').partition("-")
    try:
        blob = bytes.fromhex(md5) if len(md5) == 32 else b""
    except ValueError:
        blob = b""
    if not blob or (parts and not parts.isdigit()):
        return hashlib.md5(etag.encode()).digest(), -1, size
    return blob, int(parts or 0), size


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a process crash loses nothing
    return conn


def _not_ours(path: Path, why: str) -> MigrateError:
    return MigrateError(f"{path}: not a checkpoint ({why}) — move it aside and rerun to start "
                        "over, or pass another --checkpoint")


def _legacy_rows(path: Path) -> Iterable[tuple[str, bytes, int, int]]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise _not_ours(path, f"neither SQLite nor valid JSON: not valid JSON at line "
                              f"{e.lineno}") from None
    except UnicodeDecodeError:
        raise _not_ours(path, "neither SQLite nor JSON") from None
    done = doc.get("done") if isinstance(doc, dict) else None
    if not isinstance(done, dict):
        raise _not_ours(path, "JSON without a `done` table")
    for key, rec in done.items():
        try:
            yield (key, *etag_entry(str(rec["etag"]), int(rec["size"])))
        except (KeyError, TypeError, ValueError):
            raise _not_ours(path, f"entry {key!r} has no etag and size") from None


def _convert_legacy(path: Path, into: Path) -> None:
    """Write the rows of the old JSON checkpoint `path` to a new SQLite file `into`."""
    tmp = into.with_name(into.name + ".converting")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.executescript(SCHEMA)
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO done VALUES (?,?,?,?)", _legacy_rows(path))
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    if path == into:  # keep the old file beside, then swap atomically
        old = path.with_name(path.name + ".json-old")
        old.unlink(missing_ok=True)
        os.link(path, old)
    os.replace(tmp, into)


class Checkpoint:
    """The checkpoint file of one source → target copy."""

    def __init__(self, path: Path, source: str, target: str, legacy: Path | None = None) -> None:
        """Open (or create) `path` for a copy from `source` to `target` (their s3://bucket/prefix:
        a checkpoint of another copy is refused, its skips would be wrong here). `legacy`: an
        old JSON checkpoint to convert when `path` does not exist yet."""
        self.path = path
        head = b""
        with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
            head = f.read(len(MAGIC))
        if head and head != MAGIC:
            _convert_legacy(path, path)
        elif not head and legacy is not None and legacy.exists():
            _convert_legacy(legacy, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(path)
            conn.executescript(SCHEMA)
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise _not_ours(path, f"SQLite: {e}") from None
        want = {"source": source, "target": target}
        for name, value in want.items():
            if meta.get(name, value) != value:
                conn.close()
                raise MigrateError(
                    f"{path}: checkpoint of a copy with {name} {meta[name]}, not {value} — pass "
                    "another --checkpoint for this copy (or delete it to start over)")
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", want.items())
        conn.close()

    def reader(self) -> CheckpointReader:
        return CheckpointReader(self.path)

    def count(self) -> int:
        conn = _connect(self.path)
        try:
            return int(conn.execute("SELECT count(*) FROM done").fetchone()[0])
        finally:
            conn.close()


class CheckpointReader:
    """One thread's read connection: the verified entries of a key range."""

    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)

    def between(self, first: str, last: str) -> dict[str, Entry]:
        rows = self.conn.execute("SELECT key, etag, parts, size FROM done WHERE key >= ? AND "
                                 "key <= ?", (first, last))
        return {k: (e, p, s) for k, e, p, s in rows}

    def close(self) -> None:
        self.conn.close()


class CheckpointWriter(threading.Thread):
    """Commits verified objects in batches; `close()` commits the rest."""

    def __init__(self, path: Path, every: float = BATCH_SECONDS, rows: int = BATCH_ROWS) -> None:
        super().__init__(name="checkpoint-writer", daemon=True)
        self.path, self.every, self.rows = path, every, rows
        self.q: queue.Queue[tuple[str, bytes, int, int] | None] = queue.Queue(maxsize=100_000)
        self.committed = 0
        self.error: BaseException | None = None

    def add(self, key: str, etag: str, size: int) -> None:
        self.q.put((key, *etag_entry(etag, size)))

    def run(self) -> None:
        conn = _connect(self.path)
        batch: list[tuple[str, bytes, int, int]] = []
        last = time.monotonic()
        try:
            while True:  # ends at the None close() puts
                try:
                    item = self.q.get(timeout=0.1)
                except queue.Empty:
                    item = ()  # type: ignore[assignment]
                if item:
                    batch.append(item)
                due = time.monotonic() - last >= self.every or len(batch) >= self.rows
                if batch and (due or item is None):
                    conn.execute("BEGIN")
                    conn.executemany("INSERT OR REPLACE INTO done VALUES (?,?,?,?)", batch)
                    conn.execute("COMMIT")
                    self.committed += len(batch)
                    batch, last = [], time.monotonic()
                elif due:
                    last = time.monotonic()
                if item is None:
                    return
        except BaseException as e:  # reported by close(): the copy must not claim success
            self.error = e
        finally:
            conn.close()

    def close(self, timeout: float = 120.0) -> None:
        if self.is_alive():
            self.q.put(None)
            self.join(timeout)
        if self.error is not None:
            raise MigrateError(f"{self.path}: checkpoint write failed: {self.error}")
