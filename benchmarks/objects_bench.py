"""Object copy against a real S3 source: `freehold migrate objects` vs `rclone sync` vs
`aws s3 sync` (issue 25), and the copy checkpoint at 1 M keys.

Run on an otherwise idle machine:
    nice .venv/bin/python benchmarks/objects_bench.py [--objects 200000] [--large-gib 1]
        [--large-count 2] [--rounds 1]
→ prints figures, writes benchmarks/results/objects_bench.json under the run header.
200,000 small objects need ~35 GB of disk (source, one target at a time, aws's local copy).

Source: a SeaweedFS on loopback (devstack.SeaweedS3) holding bucket `small` (objects of 5–200 KB,
log-uniform like social images, under Mastodon's media_attachments/files/NNN/NNN/NNN/original/
keys) and bucket `large` (`--large-count` objects of `--large-gib` GiB, multipart at the source
with 8 MiB parts). Target: a second SeaweedFS, wiped and restarted before every run. The tools
run one after the other (their order turns each round), each as its own process: wall time,
CPU-seconds (user + system of the process and its children) and peak RSS come from the kernel
through GNU time; the CPU-seconds each store spent serving the run (store_cpu_s: on 2 cores a
tool that makes the stores work harder is slower) and the load average before and after are
recorded too. Every run's target is listed after it: all objects, all bytes, or the run is
marked. `--aws-prefix`: aws copies only that prefix of the small set (its figures are over
that subset); `--tools ours_before --ours-before DIR`: ours from another checkout, alternated
with the rest (before/after).

Flags: ours `--workers 32 --listers 4 --parts-in-flight 8` (the source's 8 MiB parts kept;
credentials in the environment, not argv); rclone `--transfers 32
--checkers 16 --s3-upload-concurrency 4 --s3-chunk-size 16M --fast-list --s3-no-check-bucket`
(same concurrency as ours; --fast-list: one listing, faster at this size, memory per key);
aws s3 sync cannot copy between endpoints: it downloads to local disk, then uploads (its default
10 concurrent requests, 8 MiB multipart chunks); its figures are the sum of both steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resultsfile import write_results  # noqa: E402

# what both stores ran with: app.devstack.SeaweedS3, the same `weed server` as the media role's
# single-copy setting (one volume server, replication 000), which acknowledges a PUT once the
# volume server has written it (no fsync per object)
DURABILITY = {"seaweedfs": "weed server, one volume server, replication 000, no fsync per write",
              "checkpoint": "SQLite WAL, synchronous=NORMAL, committed every 0.5 s"}

from freehold.app.devstack import SeaweedS3  # noqa: E402
from freehold.deploy.migrate.s3client import S3Location, client  # noqa: E402

MiB = 1024 * 1024
SMALL_MIN, SMALL_MAX = 5_000, 200_000
SRC_PART = 8 * MiB
TOOLS = ("ours", "rclone", "aws")
TIMEOUT = 3 * 3600


def s3(sw: SeaweedS3, pool: int = 32) -> Any:
    return client(S3Location(bucket="x", endpoint=sw.endpoint, access_key=sw.access_key,
                             secret_key=sw.secret_key), max_pool=pool)


# -- seeding the source --------------------------------------------------------------------
def small_key(rnd: random.Random) -> str:
    a, b, c = rnd.randrange(110, 112), rnd.randrange(1000), rnd.randrange(1000)
    name = f"{rnd.getrandbits(64):016x}.jpg"
    return f"media_attachments/files/{a:03d}/{b:03d}/{c:03d}/original/{name}"


def seed_small(c: Any, n: int) -> tuple[int, int]:
    c.create_bucket(Bucket="small")
    rnd = random.Random(25)
    pool = os.urandom(SMALL_MAX + 4096)
    jobs = []
    for i in range(n):
        size = int(math.exp(rnd.uniform(math.log(SMALL_MIN), math.log(SMALL_MAX))))
        jobs.append((small_key(rnd), size, rnd.randrange(4096), i))
    total = sum(j[1] for j in jobs)

    def put(job: tuple[str, int, int, int]) -> None:
        key, size, off, i = job
        body = i.to_bytes(8, "big") + pool[off:off + size - 8]
        c.put_object(Bucket="small", Key=key, Body=body)

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(put, jobs))
    return n, total


def seed_large(c: Any, count: int, gib: float) -> tuple[int, int]:
    c.create_bucket(Bucket="large")
    size = int(gib * 1024 * MiB)
    block = os.urandom(64 * MiB)
    for k in range(count):
        key = f"media_attachments/videos/{k:04d}.mp4"
        up = c.create_multipart_upload(Bucket="large", Key=key)

        def part(n: int, key: str = key, uid: str = up["UploadId"], k: int = k) -> dict:
            off = (n - 1) * SRC_PART
            ln = min(SRC_PART, size - off)
            start = (n * 7919 + k) % (len(block) - SRC_PART)
            body = n.to_bytes(4, "big") + k.to_bytes(4, "big") + block[start:start + ln - 8]
            r = c.upload_part(Bucket="large", Key=key, UploadId=uid, PartNumber=n, Body=body)
            return {"ETag": r["ETag"], "PartNumber": n}

        with ThreadPoolExecutor(4) as ex:
            parts = list(ex.map(part, range(1, -(-size // SRC_PART) + 1)))
        c.complete_multipart_upload(Bucket="large", Key=key, UploadId=up["UploadId"],
                                    MultipartUpload={"Parts": parts})
    return count, count * size


# -- running a tool ------------------------------------------------------------------------
def measured(cmds: list[list[str]], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run the commands one after the other; wall time, CPU-seconds and peak RSS.

    Each runs under GNU time (/usr/bin/time), which reports its child's rusage: a child forked
    straight from this process would inherit this process's resident size as its peak
    (ru_maxrss survives fork and exec), so the kernel's figure must come from a small parent."""
    gnu_time = shutil.which("time") or "/usr/bin/time"
    cpu, rss, t0 = 0.0, 0, time.monotonic()
    for i, cmd in enumerate(cmds):
        usage = log.with_name(f"{log.name}.time{i}")
        with log.open("ab") as out:
            p = subprocess.Popen([gnu_time, "-f", "%U %S %M", "-o", str(usage), *cmd], env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = p.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)
                raise RuntimeError(f"{cmd[0]} ran over {TIMEOUT} s") from None
        if rc != 0:
            raise RuntimeError(f"{cmd[0]} exited {rc}: see {log}")
        user, system, maxrss = usage.read_text().split()[-3:]
        cpu += float(user) + float(system)
        rss = max(rss, int(maxrss))
    return {"seconds": time.monotonic() - t0, "cpu_s": round(cpu, 1),
            "peak_rss_MB": round(rss / 1024, 1)}


def run_ours(src: SeaweedS3, dst: SeaweedS3, bucket: str, tmp: Path, log: Path,
             workers: int, pythonpath: str | None = None) -> dict[str, Any]:
    # credentials through the environment, never argv
    env = {**os.environ, "AWS_ACCESS_KEY_ID": src.access_key,
           "AWS_SECRET_ACCESS_KEY": src.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           "FREEHOLD_S3_ACCESS_KEY": dst.access_key, "FREEHOLD_S3_SECRET_KEY": dst.secret_key}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cp = tmp / f"cp-{bucket}-{time.monotonic_ns()}.sqlite"
    cmd = [sys.executable, "-m", "freehold.deploy", "migrate", "objects",
           "--from", f"s3://{bucket}", "--from-endpoint", src.endpoint,
           "--to", f"{dst.endpoint}/{bucket}", "--checkpoint", str(cp), "--json",
           "--workers", str(workers), "--listers", "4", "--parts-in-flight", "8"]
    out = measured([cmd], env, log)
    report = json.loads(_last_json(log))
    out["retries"] = report["retries"]
    out["checkpoint_bytes"] = cp.stat().st_size
    return out


def _last_json(log: Path) -> str:
    text = log.read_text()
    return text[text.rindex("\n{") + 1:] if "\n{" in text else text[text.index("{"):]


def run_rclone(src: SeaweedS3, dst: SeaweedS3, bucket: str, tmp: Path, log: Path,
               workers: int) -> dict[str, Any]:
    exe = shutil.which("rclone")
    if not exe:
        raise RuntimeError("rclone missing: apt-get install rclone (scripts/install-deps.sh)")
    # rclone's AWS SDK refuses a custom CA bundle with its own transport: loopback is plain HTTP
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env["RCLONE_CONFIG"] = str(tmp / "no-rclone.conf")
    for name, sw in (("SRC", src), ("DST", dst)):
        env.update({f"RCLONE_CONFIG_{name}_TYPE": "s3", f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
                    f"RCLONE_CONFIG_{name}_ENDPOINT": sw.endpoint,
                    f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": sw.access_key,
                    f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": sw.secret_key,
                    f"RCLONE_CONFIG_{name}_FORCE_PATH_STYLE": "true"})
    cmd = [exe, "sync", f"src:{bucket}", f"dst:{bucket}", "--transfers", str(workers),
           "--checkers", "16", "--s3-upload-concurrency", "4", "--s3-chunk-size", "16M",
           "--fast-list", "--s3-no-check-bucket", "--retries", "3", "-q"]
    return measured([cmd], env, log)


def run_aws(src: SeaweedS3, dst: SeaweedS3, bucket: str, tmp: Path, log: Path,
            workers: int, prefix: str = "") -> dict[str, Any]:
    exe = shutil.which("aws")
    if not exe:
        raise RuntimeError("awscli missing")
    local = tmp / f"aws-{bucket}"
    shutil.rmtree(local, ignore_errors=True)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": src.access_key,
           "AWS_SECRET_ACCESS_KEY": src.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp / "no-aws-config")}
    try:
        # a subset by filter (a path would be taken as a folder: prefix + "/")
        only = ["--exclude", "*", "--include", f"{prefix}*"] if prefix else []
        return measured([[exe, "--endpoint-url", src.endpoint, "s3", "sync", f"s3://{bucket}",
                          str(local), *only, "--only-show-errors"],
                         [exe, "--endpoint-url", dst.endpoint, "s3", "sync", str(local),
                          f"s3://{bucket}", "--only-show-errors"]], env, log)
    finally:
        shutil.rmtree(local, ignore_errors=True)


RUNNERS = {"ours": run_ours, "rclone": run_rclone, "aws": run_aws}


def store_cpu(sw: SeaweedS3) -> float:
    """CPU-seconds the store's processes have used so far."""
    if sw.proc is None:
        return 0.0
    root = psutil.Process(sw.proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def run_tool(tool: str, src: SeaweedS3, dst: SeaweedS3, name: str, tmp: Path, log: Path,
             args: argparse.Namespace) -> dict[str, Any]:
    if tool == "ours_before":
        return run_ours(src, dst, name, tmp, log, args.workers, pythonpath=args.ours_before)
    if tool == "aws" and name == "small" and args.aws_prefix:
        return run_aws(src, dst, name, tmp, log, args.workers, prefix=args.aws_prefix)
    return RUNNERS[tool](src, dst, name, tmp, log, args.workers)


def target_holds(dst: SeaweedS3, bucket: str, prefix: str = "") -> tuple[int, int]:
    n = total = 0
    for page in s3(dst).get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                   Prefix=prefix):
        for o in page.get("Contents", []):
            n += 1
            total += int(o["Size"])
    return n, total


def fresh_target(tmp: Path, old: SeaweedS3 | None) -> SeaweedS3:
    if old is not None:
        old.stop()
        shutil.rmtree(old.root, ignore_errors=True)
    return SeaweedS3(tmp / f"dst-{time.monotonic_ns()}").start()


def bench_copy(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    src = SeaweedS3(tmp / "src").start()
    dst: SeaweedS3 | None = None
    runs: list[dict[str, Any]] = []
    try:
        c = s3(src)
        t0 = time.monotonic()
        sets = {}
        if "small" in args.sets:
            sets["small"] = seed_small(c, args.objects)
        if "large" in args.sets:
            sets["large"] = seed_large(c, args.large_count, args.large_gib)
        print(f"seeded {sets} in {time.monotonic() - t0:.0f} s", flush=True)
        tools = [t for t in (*TOOLS, "ours_before") if t in args.tools]
        subset = {}
        if "small" in sets and args.aws_prefix and "aws" in tools:
            subset = {"aws": target_holds(src, "small", args.aws_prefix)}
        for rnd in range(args.rounds):
            order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
            for name, (n, nbytes) in sets.items():
                for tool in order:
                    dst = fresh_target(tmp, dst)
                    s3(dst).create_bucket(Bucket=name)
                    time.sleep(2)  # the fresh store settles (volume server registered)
                    log = tmp / f"{tool}-{name}-{rnd}.log"
                    row: dict[str, Any] = {"round": rnd, "set": name, "tool": tool,
                                           "loadavg_1m_before": round(os.getloadavg()[0], 1)}
                    want, prefix = (n, nbytes), ""
                    if name == "small" and tool in subset:
                        want, prefix = subset[tool], args.aws_prefix
                        row.update({"subset_prefix": prefix, "subset_objects": want[0],
                                    "subset_bytes": want[1]})
                    cpu0 = (store_cpu(src), store_cpu(dst))
                    try:
                        row.update(run_tool(tool, src, dst, name, tmp, log, args))
                    except RuntimeError as e:
                        row["error"] = f"{e}: {log.read_text()[-400:] if log.exists() else ''}"
                    row["store_cpu_s"] = {"source": round(store_cpu(src) - cpu0[0], 1),
                                          "target": round(store_cpu(dst) - cpu0[1], 1)}
                    row["loadavg_1m_after"] = round(os.getloadavg()[0], 1)
                    held = target_holds(dst, name, prefix)
                    row["complete"] = held == want
                    if "seconds" in row:
                        row["objects_per_s"] = round(want[0] / row["seconds"], 1)
                        row["MB_per_s"] = round(want[1] / 1e6 / row["seconds"], 1)
                        row["seconds"] = round(row["seconds"], 1)
                    runs.append(row)
                    print(row, flush=True)
    finally:
        if dst is not None:
            dst.stop()
        src.stop()
    return {"sets": {k: {"objects": n, "bytes": b} for k, (n, b) in sets.items()},
            "runs": runs, "summary": summary(runs)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure per set and tool (complete runs only)."""
    out: dict[str, Any] = {}
    for r in runs:
        if r.get("complete") and "seconds" in r:
            out.setdefault(r["set"], {}).setdefault(r["tool"], []).append(r)
    for tools in out.values():
        for tool, rs in tools.items():
            tools[tool] = {k: statistics.median(x[k] for x in rs)
                           for k in ("objects_per_s", "MB_per_s", "cpu_s", "peak_rss_MB",
                                     "seconds")}
            for side in ("source", "target"):
                tools[tool][f"store_cpu_s_{side}"] = statistics.median(
                    x["store_cpu_s"][side] for x in rs)
            tools[tool]["runs"] = len(rs)
            if "subset_prefix" in rs[0]:
                tools[tool]["subset"] = {k: rs[0][k] for k in ("subset_prefix",
                                                               "subset_objects", "subset_bytes")}
    return out


# -- the checkpoint at 1 M keys ------------------------------------------------------------
NEW_CHECKPOINT = """
import json, resource, sys, time
from pathlib import Path
from freehold.deploy.migrate.checkpoint import Checkpoint, CheckpointWriter
n, path = int(sys.argv[1]), Path(sys.argv[2])
key = "media_attachments/files/{:03d}/{:03d}/{:03d}/original/{:016x}.jpg"
keys = (key.format(110 + i % 2, i // 1000 % 1000, i % 1000, i * 2654435761 % 2**64)
        for i in range(n))
cp = Checkpoint(path, "s3://src/", "s3://dst/")
t0 = time.monotonic()
w = CheckpointWriter(path)
w.start()
for i, k in enumerate(keys):
    w.add(k, f"{i * 40503 % 2**128:032x}", 50_000 + i % 150_000)
w.close()
ins = time.monotonic() - t0
t0 = time.monotonic()
r = cp.reader()
d = "media_attachments/files/{}/{:03d}/"
hits = sum(len(r.between(d.format(a, b), d.format(a, b) + "~"))
           for a in (110, 111) for b in range(1000))
r.close()
print(json.dumps({"keys": n, "rows": cp.count(), "looked_up": hits,
                  "insert_s": round(ins, 1), "lookup_s": round(time.monotonic() - t0, 1),
                  "file_bytes": path.stat().st_size,
                  "peak_rss_MB": round(
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""

OLD_CHECKPOINT = """
import json, resource, sys, time
from pathlib import Path
n, path = int(sys.argv[1]), Path(sys.argv[2])
key = "media_attachments/files/{:03d}/{:03d}/{:03d}/original/{:016x}.jpg"
t0 = time.monotonic()
done = {key.format(110 + i % 2, i // 1000 % 1000, i % 1000, i * 2654435761 % 2**64):
        {"etag": f"{i * 40503 % 2**128:032x}", "size": 50_000 + i % 150_000,
         "md5": f"{i * 40503 % 2**128:032x}"} for i in range(n)}
path.write_text(json.dumps({"source": "s", "target": "t", "done": done}))
one_flush = time.monotonic() - t0
print(json.dumps({"keys": n, "file_bytes": path.stat().st_size, "build_and_one_flush_s":
                  round(one_flush, 1),
                  "peak_rss_MB": round(
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def bench_checkpoint(tmp: Path, keys: int) -> dict[str, Any]:
    out = {}
    for name, code in (("sqlite", NEW_CHECKPOINT), ("old_json", OLD_CHECKPOINT)):
        path = tmp / f"cp-{name}"
        r = subprocess.run([sys.executable, "-c", code, str(keys), str(path)],
                           capture_output=True, text=True, timeout=1800, check=True)
        out[name] = json.loads(r.stdout)
        path.unlink()
        print(name, out[name], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=200_000, help="small objects (5–200 KB)")
    ap.add_argument("--large-count", type=int, default=2)
    ap.add_argument("--large-gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=1, help="runs of each tool (order turns)")
    ap.add_argument("--workers", type=int, default=32,
                    help="objects in flight: ours --workers, rclone --transfers")
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=(*TOOLS, "ours_before"))
    ap.add_argument("--ours-before", metavar="PYTHONPATH",
                    help="tool ours_before: `freehold migrate objects` from another checkout (a "
                    "directory holding freehold/{app,deploy,roles,loadgen})")
    ap.add_argument("--aws-prefix", default="",
                    help="aws s3 sync copies only this prefix of the small set (it is slow)")
    ap.add_argument("--sets", nargs="+", default=["small", "large"], choices=("small", "large"))
    ap.add_argument("--checkpoint-keys", type=int, default=1_000_000, help="0: not measured")
    ap.add_argument("--out", default="objects_bench.json", help="file in benchmarks/results")
    ap.add_argument("--skip-copy", action="store_true", help="the checkpoint figures only")
    args = ap.parse_args()
    if "ours_before" in args.tools and not args.ours_before:
        ap.error("--tools ours_before needs --ours-before PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="objects-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        out: dict[str, Any] = {}
        if args.checkpoint_keys:
            out["checkpoint"] = bench_checkpoint(tmp, args.checkpoint_keys)
        if not args.skip_copy:
            out["copy"] = bench_copy(tmp, args)
    print(json.dumps(out, indent=1))
    write_results(Path(__file__).parent / "results" / args.out, out,
                  script=__file__, settings=vars(args), durability=DURABILITY, indent=1)


if __name__ == "__main__":
    main()
