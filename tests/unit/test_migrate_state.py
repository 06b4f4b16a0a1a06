"""State files survive failed writes; multipart ETags are computed as S3 does."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from freehold.deploy.atomic import write_json as atomic_write_json
from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.state import read_json, set_step
from freehold.deploy.migrate.transfer import PartHasher, multipart_etag


class Boom:
    def __str__(self) -> str:
        raise RuntimeError("crash mid-write")


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "cp.json"
    atomic_write_json(p, {"done": {"a": 1}})
    with pytest.raises(RuntimeError):
        atomic_write_json(p, {"done": {"a": 1, "b": Boom()}})
    assert json.loads(p.read_text()) == {"done": {"a": 1}}
    assert [x.name for x in tmp_path.iterdir()] == ["cp.json"]


def test_corrupt_state_is_reported_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "steps.json").write_text("{half")
    with pytest.raises(MigrateError, match="not valid JSON"):
        set_step(tmp_path, "objects", "running")
    assert (tmp_path / "steps.json").read_text() == "{half"
    assert read_json(tmp_path / "missing.json", {"x": 1}) == {"x": 1}


def test_multipart_etag_matches_s3_formula() -> None:
    data = bytes(range(256)) * 50_000  # 12.8 MB
    part = 5 * 1024 * 1024
    h = PartHasher(part)
    for i in range(0, len(data), 777_777):  # chunks that straddle part boundaries
        h.update(data[i:i + 777_777])
    parts = [hashlib.md5(data[i:i + part]).digest() for i in range(0, len(data), part)]
    assert h.etag() == multipart_etag(parts) == hashlib.md5(b"".join(parts)).hexdigest() + "-3"
    big = PartHasher(part)
    big.update(data)  # one chunk larger than two parts
    assert big.etag() == h.etag()


def test_status_marks_a_step_done_outside_migrate(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from freehold.deploy.cli import app

    m = tmp_path / "m.yaml"
    m.write_text("kind: freehold-migration-manifest\n")
    run = CliRunner().invoke
    r = run(app, ["migrate", "status", str(m), "--mark", "deploy=done", "--json"])
    assert r.exit_code == 0, r.output
    steps = {s["step"]: s for s in json.loads(r.stdout)}
    assert steps["deploy"]["state"] == "done" and "marked by hand" in steps["deploy"]["detail"]
    assert steps["discover"]["state"] == "done"          # the manifest exists
    assert steps["objects-final"]["state"] == "pending"
    before = (tmp_path / "m.state" / "steps.json").read_bytes()
    for bad in ("deploy", "deploy=finished", "nosuch=done"):
        r = run(app, ["migrate", "status", str(m), "--mark", bad])
        assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
        assert "--mark" in r.stderr and "deploy" in r.stderr
    assert (tmp_path / "m.state" / "steps.json").read_bytes() == before


def test_a_multipart_source_keeps_its_parts_when_s3_and_memory_allow() -> None:
    from freehold.deploy.migrate.s3client import S3Location
    from freehold.deploy.migrate.transfer import MiB, Transfer

    t = Transfer(None, None, S3Location("a"), S3Location("b"))
    try:
        gib = 1024 * MiB
        assert t.target_part_size(gib, 8 * MiB) == 8 * MiB  # the source's: one MD5 pass
        assert t.target_part_size(gib, None) == 16 * MiB  # not multipart: ours
        assert t.target_part_size(gib, 4 * MiB) == 16 * MiB  # below S3's 5 MiB
        assert t.target_part_size(gib, 512 * MiB) == 16 * MiB  # 8 in flight: too much memory
        # 10,000 parts at most: 100 GiB in 8 MiB parts would be 12,800
        assert t.target_part_size(100 * gib, 8 * MiB) == 16 * MiB
        assert t.target_part_size(1024 * gib, 64 * MiB) == 105 * MiB
    finally:
        t.close()
