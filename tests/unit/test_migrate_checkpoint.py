"""The copy checkpoint (issue 25): SQLite on disk, batched commits, old JSON converted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.checkpoint import (
    MAGIC,
    Checkpoint,
    CheckpointWriter,
    etag_entry,
)

SRC, DST = "s3://src/", "s3://dst/"


def test_rows_written_in_batches_and_read_by_range(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    cp = Checkpoint(path, SRC, DST)
    w = CheckpointWriter(path, every=0.05)
    w.start()
    for i in range(2000):
        w.add(f"k/{i:05d}", "d41d8cd98f00b204e9800998ecf8427e" if i % 2 else "ab" * 16 + "-3", i)
    w.close()
    assert path.read_bytes()[:16] == MAGIC
    assert cp.count() == 2000
    r = cp.reader()
    got = r.between("k/00010", "k/00012")
    r.close()
    assert got == {"k/00010": etag_entry("ab" * 16 + "-3", 10),
                   "k/00011": etag_entry("d41d8cd98f00b204e9800998ecf8427e", 11),
                   "k/00012": etag_entry("ab" * 16 + "-3", 12)}
    assert etag_entry("ab" * 16 + "-3", 1) != etag_entry("ab" * 16 + "-4", 1)
    assert etag_entry("ab" * 16, 1) != etag_entry("ab" * 16, 2)
    assert len(etag_entry("ab" * 16, 1)[0]) == 16 and len(etag_entry("not-hex", 1)[0]) == 16


def test_old_json_checkpoint_is_converted_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "objects-b.checkpoint.json"
    done = {f"m/{i}": {"etag": "00" * 16, "size": i, "md5": "00" * 16} for i in range(50)}
    path.write_text(json.dumps({"source": "x", "target": "y", "done": done}))
    cp = Checkpoint(path, SRC, DST)
    assert cp.count() == 50
    assert path.read_bytes()[:16] == MAGIC
    assert json.loads((tmp_path / "objects-b.checkpoint.json.json-old").read_text())["done"]
    r = cp.reader()
    assert r.between("m/7", "m/7") == {"m/7": etag_entry("00" * 16, 7)}
    r.close()
    # the legacy default beside a new default path
    legacy = tmp_path / "old.json"
    legacy.write_text(json.dumps({"done": {"a": {"etag": "11" * 16, "size": 3}}}))
    assert Checkpoint(tmp_path / "new.sqlite", SRC, DST, legacy=legacy).count() == 1


@pytest.mark.parametrize("text,why", [("{not json", "not valid JSON"),
                                      ('{"x": 1}', "without a `done` table"),
                                      ('{"done": {"a": {}}}', "has no etag and size")])
def test_bad_checkpoint_one_line_and_untouched(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "cp.json"
    path.write_text(text)
    with pytest.raises(MigrateError) as e:
        Checkpoint(path, SRC, DST)
    assert why in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    assert "move it aside" in str(e.value)
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]


def test_checkpoint_of_another_copy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    Checkpoint(path, SRC, DST)
    with pytest.raises(MigrateError, match="checkpoint of a copy with target s3://dst/, not "
                                           "s3://other/ — pass another --checkpoint"):
        Checkpoint(path, SRC, "s3://other/")


WRITER = """
import sys, time
from pathlib import Path
from freehold.deploy.migrate.checkpoint import Checkpoint, CheckpointWriter
path = Path(sys.argv[1])
Checkpoint(path, "s3://src/", "s3://dst/")
w = CheckpointWriter(path, every=0.05)
w.start()
for i in range(10**6):
    w.add(f"k/{i:07d}", "00" * 16, i)
    if i % 100 == 0:
        time.sleep(0.001)
"""


def test_kill_9_loses_at_most_the_last_batch_never_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        rows = 0
        while time.monotonic() < deadline and rows < 3000:
            time.sleep(0.1)
            if path.exists():
                try:
                    with sqlite3.connect(path, timeout=5) as c:
                        rows = c.execute("SELECT count(*) FROM done").fetchone()[0]
                except sqlite3.OperationalError:
                    rows = 0
        assert rows >= 3000
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.kill()
        p.wait(timeout=10)
    cp = Checkpoint(path, SRC, DST)
    n = cp.count()
    assert n >= rows
    r = cp.reader()
    keys = sorted(r.between("k/", "k/~"))
    r.close()
    # committed rows are a prefix of what was written: nothing in the middle lost
    assert keys == [f"k/{i:07d}" for i in range(n)]
