"""Object copy under faults (issue 25): kill -9 and rerun, a throttling source, the target's
SeaweedFS restarted mid-copy, and the incremental catch-up before cut-over. Real processes:
`python -m freehold.deploy migrate objects` subprocesses, moto as the cloud source, SeaweedFS
as the target."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freehold.app.devstack import SeaweedS3
from freehold.deploy.cli import app
from freehold.deploy.migrate.objects import ObjectCopier
from freehold.deploy.migrate.s3client import S3Location
from tests.integration.migrate.conftest import s3
from tests.integration.migrate.faults import ThrottlingProxy

pytestmark = pytest.mark.integration
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in AWS.items():
        monkeypatch.setenv(k, v)


def seed(endpoint: str, n: int, size: int = 2000) -> tuple[str, dict[str, str]]:
    """`n` objects under media/; returns the bucket and key → ETag."""
    bucket = f"src-{uuid.uuid4().hex[:8]}"
    c = s3(endpoint)
    c.create_bucket(Bucket=bucket)
    out = {}
    for i in range(n):
        key = f"media/{i % 7}/{i:05d}.jpg"
        out[key] = c.put_object(Bucket=bucket, Key=key,
                                Body=os.urandom(size + i % 300))["ETag"].strip('"')
    return bucket, out


def target_bucket(sw: SeaweedS3) -> str:
    bucket = f"dst-{uuid.uuid4().hex[:8]}"
    s3(sw.endpoint, sw.access_key, sw.secret_key).create_bucket(Bucket=bucket)
    return bucket


def cli(src_endpoint: str, bucket: str, sw: SeaweedS3, dst: str, cp: Path,
        *extra: str) -> list[str]:
    return [sys.executable, "-m", "freehold.deploy", "migrate", "objects",
            "--from", f"s3://{bucket}", "--from-endpoint", src_endpoint,
            "--to", f"{sw.endpoint}/{dst}", "--to-access-key", sw.access_key,
            "--to-secret-key", sw.secret_key, "--checkpoint", str(cp), "--json", *extra]


def rows(cp: Path) -> set[str]:
    if not cp.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{cp}?mode=ro", uri=True, timeout=5) as c:
            return {k for (k,) in c.execute("SELECT key FROM done")}
    except sqlite3.OperationalError:
        return set()


def run_until(args: list[str], cp: Path, at_rows: int,
              then: Callable[[subprocess.Popen[bytes]], None], tmp: Path) -> tuple[int, str]:
    """Start the copy; when the checkpoint holds `at_rows` rows call `then(proc)`; wait."""
    out, err = (tmp / "out.json").open("wb"), (tmp / "err.txt").open("wb")
    p = subprocess.Popen(args, stdout=out, stderr=err, env={**os.environ, **AWS})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(rows(cp)) < at_rows and p.poll() is None:
            time.sleep(0.05)
        assert p.poll() is None, (tmp / "err.txt").read_text()
        then(p)
        rc = p.wait(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        out.close()
        err.close()
    return rc, (tmp / "out.json").read_text()


def verify(src_endpoint: str, bucket: str, sw: SeaweedS3, dst: str, cp: Path) -> dict:
    r = subprocess.run(cli(src_endpoint, bucket, sw, dst, cp, "--verify"), capture_output=True,
                       env={**os.environ, **AWS}, timeout=300)
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    return json.loads(r.stdout)


def test_kill_9_then_rerun(moto_endpoint, s3_server, tmp_path: Path) -> None:
    n = 400
    bucket, objs = seed(moto_endpoint, n)
    dst = target_bucket(s3_server)
    cp = tmp_path / "cp.sqlite"
    args = cli(moto_endpoint, bucket, s3_server, dst, cp, "--workers", "2")
    rc, _ = run_until(args, cp, 40, lambda p: os.kill(p.pid, signal.SIGKILL), tmp_path)
    assert rc == -signal.SIGKILL
    before = rows(cp)
    assert 40 <= len(before) < n, "killed after the copy ended: seed more objects"
    r = subprocess.run(args, capture_output=True, env={**os.environ, **AWS}, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    report = json.loads(r.stdout)
    # nothing the checkpoint held verified is copied again, nothing is missed
    assert (report["skipped"], report["copied"], report["failed"]) == (len(before),
                                                                       n - len(before), 0)
    assert rows(cp) == set(objs)
    got = verify(moto_endpoint, bucket, s3_server, dst, cp)
    assert (got["ok"], got["checked"]) == (True, n)
    listed = s3(s3_server.endpoint, s3_server.access_key, s3_server.secret_key).list_objects_v2(
        Bucket=dst, MaxKeys=1000)["Contents"]
    assert {o["Key"]: o["ETag"].strip('"') for o in listed} == objs


def test_throttling_source_is_backed_off_not_failed(moto_endpoint, s3_server,
                                                     tmp_path: Path) -> None:
    bucket, objs = seed(moto_endpoint, 60)
    # one large object, multipart at the source (4 parts of 5 MiB): the streamed path
    c = s3(moto_endpoint)
    mp = c.create_multipart_upload(Bucket=bucket, Key="media/video.mp4")
    parts = []
    for i in range(1, 5):
        r = c.upload_part(Bucket=bucket, Key="media/video.mp4", UploadId=mp["UploadId"],
                          PartNumber=i, Body=os.urandom(5 * 1024 * 1024))
        parts.append({"ETag": r["ETag"], "PartNumber": i})
    c.complete_multipart_upload(Bucket=bucket, Key="media/video.mp4", UploadId=mp["UploadId"],
                                MultipartUpload={"Parts": parts})
    dst = target_bucket(s3_server)
    cp = tmp_path / "cp.sqlite"
    with ThrottlingProxy(moto_endpoint, every=4) as proxy:
        r = CliRunner().invoke(app, cli(proxy.endpoint, bucket, s3_server, dst, cp)[3:])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert proxy.throttled > 0
    assert (report["copied"], report["failed"]) == (61, 0)
    assert report["retries"] >= proxy.throttled > 0
    got = verify(moto_endpoint, bucket, s3_server, dst, cp)
    assert (got["ok"], got["checked"]) == (True, 61)
    head = s3(s3_server.endpoint, s3_server.access_key, s3_server.secret_key).head_object(
        Bucket=dst, Key="media/video.mp4")
    assert head["Metadata"]["freehold-source-etag"].endswith("-4")
    assert head["ContentLength"] == 20 * 1024 * 1024


def test_target_restarted_mid_copy_is_retried(moto_endpoint, tmp_path: Path) -> None:
    sw = SeaweedS3(tmp_path / "sw").start()
    try:
        n = 300
        bucket, objs = seed(moto_endpoint, n)
        dst = target_bucket(sw)
        cp = tmp_path / "cp.sqlite"
        at_stop: list[int] = []

        def restart(p: subprocess.Popen[bytes]) -> None:
            sw.stop()
            at_stop.append(len(rows(cp)))
            time.sleep(1.0)
            sw.start()

        rc, out = run_until(cli(moto_endpoint, bucket, sw, dst, cp, "--workers", "4",
                                "--retries", "10"), cp, 30, restart, tmp_path)
        assert rc == 0, (tmp_path / "err.txt").read_text()
        assert at_stop[0] < n, "the copy ended before the restart: seed more objects"
        report = json.loads(out)
        assert (report["copied"], report["failed"]) == (n, 0)
        assert report["retries"] > 0
        got = verify(moto_endpoint, bucket, sw, dst, cp)
        assert (got["ok"], got["checked"]) == (True, n)
    finally:
        sw.stop()


def test_incremental_final_pass_copies_only_changes(moto_endpoint, s3_server,
                                                    tmp_path: Path) -> None:
    bucket, objs = seed(moto_endpoint, 30)
    dst = target_bucket(s3_server)
    cp = tmp_path / "cp.sqlite"
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: freehold-migration-manifest\n")
    args = [*cli(moto_endpoint, bucket, s3_server, dst, cp)[3:], "--manifest", str(manifest)]
    runner = CliRunner()
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and json.loads(r.stdout)["copied"] == 30, r.output
    c = s3(moto_endpoint)
    c.put_object(Bucket=bucket, Key="media/0/00000.jpg", Body=b"edited")
    c.put_object(Bucket=bucket, Key="media/9/new.jpg", Body=b"uploaded during the move")
    # dry run: says what the final pass would copy, copies nothing
    r = runner.invoke(app, [*args, "--dry-run"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["to_copy"] == ["media/0/00000.jpg", "media/9/new.jpg"]
    r = runner.invoke(app, [*args, "--final"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert (rep["copied"], rep["skipped"], rep["listed"]) == (2, 29, 31)
    r = runner.invoke(app, ["migrate", "status", str(manifest), "--json"])
    final = {s["step"]: s for s in json.loads(r.stdout)}["objects-final"]
    assert final["state"] == "done" and "cutover_copy_seconds=" in final["detail"]
    o = ObjectCopier(S3Location(bucket=bucket, endpoint=moto_endpoint),
                     S3Location(bucket=dst, endpoint=s3_server.endpoint,
                                access_key=s3_server.access_key,
                                secret_key=s3_server.secret_key), cp)
    assert o.verify().ok
