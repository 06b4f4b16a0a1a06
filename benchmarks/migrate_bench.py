"""Migration throughput on loopback: object copy (ours vs `aws s3 sync`) and the database move.

Run: nice .venv/bin/python benchmarks/migrate_bench.py [--accounts 20000] [--min-gb 10
--data DIR] → prints figures, writes benchmarks/results/migrate_bench.json. Source S3 is moto's
server, target a real SeaweedFS (moto serves ~70 objects/s: the object figures here are the
source's; benchmarks/objects_bench.py measures the copy against a real S3 source).
The database is the app's own schema (app.db.migrate) seeded by the app's seeder (app.seed, COPY:
accounts, power-law follows, posts over time, upvotes) in batches of --accounts until it holds
--min-gb (benchmarks/dbseed.py; with --data the seeded source is kept and reused, its seed
figures reported as measured when it was seeded). In one run, on the same data:
0. the old logical copy (the whole schema, every index, on the target before the copy) to its
   first consistent copy, then dropped;
1. logical replication (deploy.migrate.database: indexes built after the copy, dbschema) while
   a steady writer (deploy.migrate.writeprobe) creates posts the app's way against "the current
   primary": time to the first consistent copy (subscription created → every table copied,
   every index built, lag under 1 MiB), then the cut-over: lag at the freeze, the write outage
   as the writer saw it (last acknowledged post on the source → first on the target), the
   acknowledged posts all found on the target, and the verification of every row (frozen
   source vs the target's snapshot, in key ranges, after the hand-over);
2. pg_dump -Fd -j N | pg_restore -j N (N = cores) of the same frozen source into a fresh
   database, verified the same way.
Both PostgreSQL servers run with production durability unless `--durability fast`; the results
file records what they reported (run header, benchmarks/resultsfile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dbseed import database_size, source_server  # noqa: E402
from resultsfile import write_results  # noqa: E402

from freehold.app.devstack import DURABILITY, Postgres, SeaweedS3, durability_of  # noqa: E402
from freehold.deploy.migrate import database as db  # noqa: E402
from freehold.deploy.migrate.dbverify import verify  # noqa: E402
from freehold.deploy.migrate.objects import ObjectCopier  # noqa: E402
from freehold.deploy.migrate.s3client import S3Location, client  # noqa: E402
from freehold.deploy.migrate.writeprobe import WriteProbe  # noqa: E402

SETS = {"small": (400, 8 * 1024), "large": (6, 12 * 1024 * 1024)}


def seed_objects(src: Any, bucket: str, n: int, size: int) -> None:
    src.create_bucket(Bucket=bucket)
    blob = os.urandom(size)
    for i in range(n):
        src.put_object(Bucket=bucket, Key=f"o/{i:05d}", Body=blob[i % 97:] + blob[:i % 97])


def aws_sync(moto: str, sw: SeaweedS3, bucket: str, dest: str, tmp: Path) -> float | None:
    """`aws s3 sync` can't copy across endpoints: download from source, upload to target."""
    aws = shutil.which("aws")
    if not aws:
        print("awscli missing: skipping aws s3 sync (apt-get install awscli)")
        return None
    local = tmp / f"sync-{bucket}"
    env_src = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
    env_dst = {**env_src, "AWS_ACCESS_KEY_ID": sw.access_key,
               "AWS_SECRET_ACCESS_KEY": sw.secret_key}
    t0 = time.monotonic()
    subprocess.run([aws, "--endpoint-url", moto, "s3", "sync", f"s3://{bucket}", str(local),
                    "--only-show-errors"], env=env_src, check=True, timeout=600)
    subprocess.run([aws, "--endpoint-url", sw.endpoint, "s3", "sync", str(local),
                    f"s3://{dest}", "--only-show-errors"], env=env_dst, check=True, timeout=600)
    return time.monotonic() - t0


def bench_objects(tmp: Path) -> dict[str, Any]:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    moto_srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto_srv.start()
    sw = SeaweedS3(tmp / "sw").start()
    results: dict[str, Any] = {}
    try:
        host, port = moto_srv.get_host_and_port()
        moto = f"http://{host}:{port}"
        src_loc = S3Location(bucket="x", endpoint=moto)
        src = client(src_loc)
        dst_c = client(S3Location(bucket="x", endpoint=sw.endpoint, access_key=sw.access_key,
                                  secret_key=sw.secret_key))
        for name, (n, size) in SETS.items():
            seed_objects(src, f"b-{name}", n, size)
            for d in (f"ours-{name}", f"aws-{name}"):
                dst_c.create_bucket(Bucket=d)
            copier = ObjectCopier(S3Location(bucket=f"b-{name}", endpoint=moto),
                                  S3Location(bucket=f"ours-{name}", endpoint=sw.endpoint,
                                             access_key=sw.access_key, secret_key=sw.secret_key),
                                  tmp / f"cp-{name}.sqlite", workers=8)
            rep = copier.run()
            assert not rep.failed, rep.failures
            mb = n * size / 1e6
            row = {"objects": n, "object_bytes": size,
                   "ours_s": round(rep.seconds, 2), "ours_MBps": round(mb / rep.seconds, 1),
                   "ours_objps": round(n / rep.seconds, 1)}
            secs = aws_sync(moto, sw, f"b-{name}", f"aws-{name}", tmp)
            if secs:
                row.update(aws_s=round(secs, 2), aws_MBps=round(mb / secs, 1),
                           aws_objps=round(n / secs, 1))
            results[name] = row
            print(name, row, flush=True)
    finally:
        sw.stop()
        moto_srv.stop()
    return results


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def first_copy(src: Postgres, dst_dsn: str, timeout: float, *, defer_indexes: bool,
               jobs: int) -> dict[str, Any]:
    """Subscription created → every table copied and streaming, every index built and valid,
    lag near zero. With `defer_indexes` the target's tables start with their primary keys only
    and the other indexes are built (`jobs` at a time) once every table is copied
    (db.advance, as `freehold migrate database --watch` does); without, as before: the whole
    schema first, the indexes kept up row by row during the copy."""
    t0 = time.monotonic()
    db.start_replication(src.dsn, dst_dsn, defer_indexes=defer_indexes)
    schema_s = time.monotonic() - t0
    copied_s = index_build_s = None
    with db.connect(src.dsn, "source") as s, db.connect(dst_dsn, "target") as t:
        last_print = 0.0
        while True:  # bounded: timeout
            p = db.copy_progress(s, t)
            now = time.monotonic() - t0
            if p.copied and copied_s is None:
                copied_s = now
            if p.consistent:
                break
            if now > timeout:
                raise RuntimeError(f"no consistent copy after {timeout:.0f} s: {p}")
            if now - last_print >= 60:
                last_print = now
                print(f"copy {now:.0f} s: {p.tables_ready}/{p.tables} tables, "
                      f"{p.bytes_target / 1e9:.2f}/{p.bytes_source / 1e9:.2f} GB, "
                      f"{p.indexes_missing} indexes missing, load {_load()}", flush=True)
            ta = time.monotonic()
            for line in db.advance(s, t, src.dsn, dst_dsn, jobs=jobs):
                print(line, flush=True)
                if line.startswith("built "):
                    index_build_s = time.monotonic() - ta
            time.sleep(1.0)
    return {"first_consistent_copy_s": round(time.monotonic() - t0, 1),
            "defer_indexes": defer_indexes, "schema_s": round(schema_s, 1),
            "tables_copied_s": round(copied_s, 1) if copied_s is not None else None,
            "index_build_s": round(index_build_s, 1) if index_build_s is not None else None,
            "index_jobs": jobs if defer_indexes else None,
            "tables": p.tables, "table_bytes_source": p.bytes_source,
            "lag_bytes_when_consistent": p.lag_bytes, "load_avg_1m": _load()}


def old_logical_copy(src: Postgres, dst: Postgres, args: argparse.Namespace) -> dict[str, Any]:
    """The copy as it was: the whole schema (every index) on the target before the copy, into
    a database of its own, under the same steady writer; dropped once consistent."""
    with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE copy_old")
    probe = WriteProbe(src.dsn, dst.dsn_for("copy_old"), _author(src), rate=args.write_rate)
    probe.start()
    try:
        copy = first_copy(src, dst.dsn_for("copy_old"), args.copy_timeout, defer_indexes=False,
                          jobs=os.cpu_count() or 2)
    finally:
        probe.stop()
    with psycopg.connect(dst.dsn_for("copy_old"), autocommit=True) as c:
        c.execute(f"DROP SUBSCRIPTION {db.NAME}")  # drops the source's slot too
    with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
        c.execute("DROP DATABASE copy_old WITH (FORCE)")
    return copy


def _author(src: Postgres) -> int:
    with psycopg.connect(src.dsn) as c:
        return int(c.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()[0])


def logical_move(src: Postgres, dst: Postgres, args: argparse.Namespace) -> dict[str, Any]:
    """Logical replication (indexes after the copy) under a steady writer, the cut-over, the
    verification after it."""
    probe = WriteProbe(src.dsn, dst.dsn, _author(src), rate=args.write_rate).start()
    try:
        copy = first_copy(src, dst.dsn, args.copy_timeout, defer_indexes=True,
                          jobs=os.cpu_count() or 2)
        print("first consistent copy", copy, flush=True)
        time.sleep(args.steady)  # the app keeps writing to the source, the target follows
        t0 = time.monotonic()
        res = db.cutover(src.dsn, dst.dsn, timeout=600, workers=os.cpu_count() or 2,
                         on_ready=probe.switch_to_target)
        cut_s = time.monotonic() - t0
        time.sleep(2.0)  # the app writes to the target
    finally:
        probe.stop()
    writes = probe.summary()
    print("cut-over", {k: v for k, v in res.items() if k != "tables"}, writes, flush=True)
    if writes["lost"] or res["tables_differing"]:
        raise RuntimeError(f"the move lost writes or differs: {writes}, "
                           f"{res['tables_differing']}")
    return {**copy, "cutover": {k: v for k, v in res.items() if k != "tables"},
            "cutover_call_s": round(cut_s, 1), "writes": writes,
            "write_outage_s": writes["outage_s"], "rows_verified": res["rows_verified"],
            "largest_tables": dict(sorted(((t["table"], t["rows_source"]) for t in res["tables"]),
                                          key=lambda kv: -kv[1])[:5]),
            "load_avg_1m_after": _load()}


def dump_restore_move(src: Postgres, dst: Postgres, jobs: int, check: bool) -> dict[str, Any]:
    """pg_dump -Fd -j N | pg_restore -j N of the same (frozen) source into a new database,
    then the same verification."""
    with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE copy2")
    load0 = _load()
    t0 = time.monotonic()
    db.dump_restore(src.dsn, dst.dsn_for("copy2"), jobs=jobs)
    secs = time.monotonic() - t0
    load1 = _load()
    out = {"jobs": jobs, "dump_restore_s": round(secs, 1), "load_avg_1m_before": load0,
           "load_avg_1m_after": load1}
    if check:
        t1 = time.monotonic()
        tables = verify(src.dsn, dst.dsn_for("copy2"), workers=jobs)
        differ = [t["table"] for t in tables if not t["equal"]]
        if differ:
            raise RuntimeError(f"dump/restore copy differs: {differ}")
        out.update(rows_verified=sum(t["rows_source"] for t in tables),
                   verify_s=round(time.monotonic() - t1, 1))
    return out


def bench_database(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    data = args.data or tmp / "seed"
    data.mkdir(parents=True, exist_ok=True)
    src, seeded = source_server(data, args.durability, int(args.min_gb * 1e9), args.accounts)
    dst = Postgres(tmp / "pgd", durability=args.durability).start()
    try:
        reported = {"source": durability_of(src), "target": durability_of(dst)}
        size = database_size(src.dsn)
        print(f"source database {size / 1e9:.2f} GB (seed reused: {seeded['reused']})",
              flush=True)
        with psycopg.connect(dst.dsn) as c:
            workers = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in (
                "max_sync_workers_per_subscription", "max_logical_replication_workers",
                "max_parallel_maintenance_workers")}
        old = old_logical_copy(src, dst, args)
        print("old logical copy", old, flush=True)
        logical = logical_move(src, dst, args)
        target_size = database_size(dst.dsn)
        with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
            c.execute(f"DROP DATABASE {dst.database} WITH (FORCE)")  # room for the next copy
        dump = dump_restore_move(src, dst, os.cpu_count() or 2, not args.no_verify_dump)
        print("dump/restore", dump, flush=True)
        cut = logical["cutover"]
        new_s, old_s = logical["first_consistent_copy_s"], old["first_consistent_copy_s"]
        dr_s = dump["dump_restore_s"]
        summary = {"database_bytes": size, "seed_s": seeded["seed_s"],
                   "first_consistent_copy_s": new_s,
                   "old_first_consistent_copy_s": old_s,
                   "ratio_old_to_dump_restore": round(old_s / dr_s, 2),
                   "ratio_new_to_dump_restore": round(new_s / dr_s, 2),
                   "speedup_new_vs_old": round(old_s / new_s, 2),
                   "lag_at_cutover_bytes": cut["lag_at_freeze_bytes"],
                   "lag_at_cutover_s": cut["replay_lag_at_freeze_s"],
                   "caught_up_after_freeze_s": cut["drain_s"],
                   "write_outage_s": logical["write_outage_s"], "write_outage_target_s": 30,
                   "writes_acknowledged": logical["writes"]["acknowledged"],
                   "writes_lost": logical["writes"]["lost"],
                   "rows_verified": logical["rows_verified"],
                   "verify_after_handover_s": cut["verify_s"],
                   "dump_restore_s": dump["dump_restore_s"], "dump_restore_jobs": dump["jobs"]}
        print("summary", json.dumps(summary), flush=True)
        return {"summary": summary, "seed": seeded, "database_bytes": size,
                "target_bytes_after_logical": target_size,
                "logical_old": old, "logical": logical, "dump_restore": dump,
                "target_workers": workers,
                "note": "one run, same seeded source, one after the other: the old logical copy "
                        "(whole schema first, indexes kept up during the copy; to its first "
                        "consistent copy, then dropped), the new one (primary keys only during "
                        "the copy, indexes built after by pg_restore -j N; under a steady "
                        "writer, cut over, verified), then pg_dump -Fd -j N | pg_restore -j N of "
                        "the same frozen source into a fresh database on the target server. Both "
                        "logical copies publish partitions via their root (the new publication "
                        "setting: posts is copied as one table).",
                "durability": reported}
    finally:
        dst.stop()
        src.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20_000,
                    help="app accounts per seed batch (one batch unless --min-gb asks for more)")
    ap.add_argument("--durability", choices=DURABILITY, default="production",
                    help="PostgreSQL durability (default production, as deployed)")
    ap.add_argument("--data", type=Path, default=None,
                    help="keep the seeded source here and reuse it on the next run")
    ap.add_argument("--min-gb", type=float, default=0.0,
                    help="seed until the source database holds this many GB")
    ap.add_argument("--write-rate", type=float, default=20.0,
                    help="posts per second the steady writer creates through the cut-over")
    ap.add_argument("--steady", type=float, default=10.0,
                    help="seconds of streaming between the first consistent copy and cut-over")
    ap.add_argument("--copy-timeout", type=float, default=4 * 3600,
                    help="longest wait for the first consistent copy (s)")
    ap.add_argument("--skip-objects", action="store_true", help="database only (development)")
    ap.add_argument("--no-verify-dump", action="store_true",
                    help="leave the dump/restore copy unverified (saves a pass over the data)")
    ap.add_argument("--seed-only", action="store_true", help="seed --data, measure nothing")
    args = ap.parse_args()
    if args.seed_only:
        if args.data is None:
            ap.error("--seed-only needs --data DIR")
        args.data.mkdir(parents=True, exist_ok=True)
        pg, seeded = source_server(args.data, args.durability, int(args.min_gb * 1e9),
                                   args.accounts)
        pg.stop()
        print(json.dumps(seeded, indent=1))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        out = {"objects": {} if args.skip_objects else bench_objects(tmp),
               "database": bench_database(tmp, args)}
    print(json.dumps(out, indent=1))
    write_results(Path(__file__).parent / "results" / "migrate_bench.json", out,
                  script=__file__, settings=vars(args),
                  durability=out["database"].pop("durability"), indent=1)


if __name__ == "__main__":
    main()
