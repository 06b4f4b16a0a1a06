"""Object copy: moto S3 (source) → real SeaweedFS S3 gateway (target)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.migrate.objects import ObjectCopier
from freehold.deploy.migrate.s3client import S3Location
from tests.integration.migrate.conftest import s3

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _seed(endpoint: str, n: int = 60) -> tuple[str, dict[str, bytes]]:
    bucket = f"src-{uuid.uuid4().hex[:8]}"
    c = s3(endpoint)
    c.create_bucket(Bucket=bucket)
    objs = {f"media/{i:04d}.bin": os.urandom(100 + i * 37) for i in range(n)}
    for k, v in objs.items():
        c.put_object(Bucket=bucket, Key=k, Body=v)
    # one multipart object (ETag ends in -3)
    big = os.urandom(5 * 1024 * 1024 * 2 + 1234)
    mp = c.create_multipart_upload(Bucket=bucket, Key="media/big.bin")
    parts = []
    for i, off in enumerate(range(0, len(big), 5 * 1024 * 1024), start=1):
        r = c.upload_part(Bucket=bucket, Key="media/big.bin", UploadId=mp["UploadId"],
                          PartNumber=i, Body=big[off:off + 5 * 1024 * 1024])
        parts.append({"ETag": r["ETag"], "PartNumber": i})
    c.complete_multipart_upload(Bucket=bucket, Key="media/big.bin", UploadId=mp["UploadId"],
                                MultipartUpload={"Parts": parts})
    objs["media/big.bin"] = big
    return bucket, objs


def _target(s3_server, bucket: str) -> S3Location:  # noqa: ANN001
    c = s3(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    c.create_bucket(Bucket=bucket)
    return S3Location(bucket=bucket, endpoint=s3_server.endpoint,
                      access_key=s3_server.access_key, secret_key=s3_server.secret_key)


def _target_bytes(s3_server, bucket: str) -> dict[str, bytes]:  # noqa: ANN001
    c = s3(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def checkpoint_keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {k for (k,) in c.execute("SELECT key FROM done")}


def test_copy_interrupt_resume_and_change(moto_endpoint, s3_server, tmp_path: Path) -> None:
    bucket, objs = _seed(moto_endpoint)
    assert s3(moto_endpoint).head_object(Bucket=bucket, Key="media/big.bin")["ETag"].endswith(
        '-3"')
    src = S3Location(bucket=bucket, endpoint=moto_endpoint)
    dst = _target(s3_server, f"dst-{uuid.uuid4().hex[:8]}")
    cp = tmp_path / "objects.checkpoint.sqlite"

    # first run: interrupted after 20 objects
    first = ObjectCopier(src, dst, cp, workers=2)
    seen: list[str] = []

    def stop_after_20(key: str) -> None:
        seen.append(key)
        if len(seen) == 20:
            raise KeyboardInterrupt

    first.after_object = stop_after_20
    with pytest.raises(KeyboardInterrupt):
        first.run()
    done_after_crash = checkpoint_keys(cp)
    assert 20 <= len(done_after_crash) < len(objs)

    # resume: copies only what is missing
    second = ObjectCopier(src, dst, cp, workers=4)
    copied: list[str] = []
    second.after_object = copied.append
    report = second.run()
    assert not report.failed, report.failures
    assert report.skipped == len(done_after_crash) and report.listed == len(objs)
    assert set(copied) == set(objs) - done_after_crash and len(copied) == report.copied
    assert _target_bytes(s3_server, dst.bucket) == objs
    assert checkpoint_keys(cp) == set(objs)
    assert second.verify().ok

    # a changed and a new source object are copied, nothing else
    changed = b"changed " * 1000
    s3(moto_endpoint).put_object(Bucket=bucket, Key="media/0003.bin", Body=changed)
    s3(moto_endpoint).put_object(Bucket=bucket, Key="media/new.bin", Body=b"new")
    third = ObjectCopier(src, dst, cp)
    copied.clear()
    third.after_object = copied.append
    report = third.run()
    assert sorted(copied) == ["media/0003.bin", "media/new.bin"] and report.copied == 2
    got = _target_bytes(s3_server, dst.bucket)
    assert hashlib.md5(got["media/0003.bin"]).digest() == hashlib.md5(changed).digest()

    # the verify pass finds a missing and a damaged object
    t = s3(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    t.delete_object(Bucket=dst.bucket, Key="media/0001.bin")
    t.put_object(Bucket=dst.bucket, Key="media/0002.bin", Body=b"damaged")
    rep = third.verify()
    assert (rep.ok, rep.checked, rep.missing, rep.mismatched) == (False, len(objs) + 1, 1, 1)
    assert any("media/0001.bin: missing" in p for p in rep.problems)


def test_cli_bad_input_one_line_exit_2(moto_endpoint, s3_server, tmp_path: Path) -> None:
    runner = CliRunner()
    bucket, _ = _seed(moto_endpoint, n=3)
    cp = tmp_path / "cp.json"
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: freehold-migration-manifest\n")
    keys = ["--to-access-key", s3_server.access_key, "--to-secret-key", s3_server.secret_key]
    good = ["--from-endpoint", moto_endpoint, "--checkpoint", str(cp), *keys]
    dst = _target(s3_server, f"dst-{uuid.uuid4().hex[:8]}")
    to = f"{s3_server.endpoint}/{dst.bucket}"
    # a good run writes the checkpoint and records the runbook step
    r = runner.invoke(app, ["migrate", "objects", "--from", f"s3://{bucket}", "--to", to,
                            *good, "--json", "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["copied"] == 4
    # the final pass before cutover copies nothing new and is its own runbook step
    r = runner.invoke(app, ["migrate", "objects", "--from", f"s3://{bucket}", "--to", to,
                            *good, "--json", "--final", "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    assert (json.loads(r.stdout)["copied"], json.loads(r.stdout)["skipped"]) == (0, 4)
    r = runner.invoke(app, ["migrate", "status", str(manifest), "--json"])
    steps = {s["step"]: s for s in json.loads(r.stdout)}
    assert steps["objects"]["state"] == steps["objects-final"]["state"] == "done"
    assert "copied=4" in steps["objects"]["detail"]
    assert "copied=0" in steps["objects-final"]["detail"]
    before = cp.read_bytes()
    steps_file = tmp_path / "m.state" / "steps.json"
    steps_before = steps_file.read_bytes()
    cases = [
        (["--from", "s3://no-such-bucket", "--to", to, *good],
         "bucket 'no-such-bucket' does not exist"),
        (["--from", f"s3://{bucket}", "--to", to, *good, "--to-secret-key", "wrong"],
         "credentials refused"),
        (["--from", f"s3://{bucket}", "--to", to, "--from-endpoint", "http://127.0.0.1:9",
          "--checkpoint", str(cp), *keys], "cannot connect"),
        (["--from", "ftp://x", "--to", to, *good], "not an S3 location"),
    ]
    for args, why in cases:
        r = runner.invoke(app, ["migrate", "objects", *args, "--manifest", str(manifest)])
        assert r.exit_code == 2, (args, r.output)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in r.output, r.output
        assert why in lines[0], lines
        assert cp.read_bytes() == before
        assert steps_file.read_bytes() == steps_before
    # a corrupt checkpoint is reported, not overwritten
    cp.write_text("{not json")
    r = runner.invoke(app, ["migrate", "objects", "--from", f"s3://{bucket}", "--to", to,
                            *good])
    assert r.exit_code == 2 and "not valid JSON" in r.stderr
    assert cp.read_text() == "{not json"
