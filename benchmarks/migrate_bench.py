"""Migration throughput on loopback: object copy (ours vs `aws s3 sync`) and database copy.

Run: nice .venv/bin/python benchmarks/migrate_bench.py [--accounts 20000] → prints figures,
writes benchmarks/results/migrate_bench.json. Source S3 is moto's server, target a real SeaweedFS
(moto serves ~70 objects/s: the object figures here are the source's; benchmarks/objects_bench.py
measures the copy against a real S3 source, with rclone and aws s3 sync).
The database is the app's own schema (app.db.migrate) seeded by the app's seeder (app.seed, COPY:
accounts, power-law follows, posts over time), copied by logical replication (schema included)
and by parallel pg_dump / pg_restore; rows/s counts the rows of every table. Both PostgreSQL
servers run with production durability unless `--durability fast`; the results file records
what they reported (run header, benchmarks/resultsfile.py).
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

from dbseed import source_server  # noqa: E402
from resultsfile import write_results  # noqa: E402

from freehold.app.devstack import DURABILITY, Postgres, SeaweedS3, durability_of  # noqa: E402
from freehold.deploy.migrate import database as db  # noqa: E402
from freehold.deploy.migrate.objects import ObjectCopier  # noqa: E402
from freehold.deploy.migrate.s3client import S3Location, client  # noqa: E402

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


def seed_app_database(dsn: str, accounts: int) -> dict[str, Any]:
    from freehold.app.db import migrate
    from freehold.deploy.loadtest.seed import run_app_seed

    migrate(dsn)
    t0 = time.monotonic()
    report = run_app_seed(dsn, accounts)
    return {"accounts": accounts, "seed_s": round(time.monotonic() - t0, 2),
            "seed_report": {k: v for k, v in report.items() if isinstance(v, int | float)}}


def row_counts(dsn: str) -> dict[str, int]:
    with db.connect(dsn, "source") as c:
        return {f"{s}.{t}": db.table_digest(c, s, t)[0] for s, t in db.tables(c)}


def bench_database(tmp: Path, accounts: int, durability: str) -> dict[str, Any]:
    src = Postgres(tmp / "pgs", durability=durability).start()
    dst = Postgres(tmp / "pgd", durability=durability).start()
    try:
        reported = {"source": durability_of(src), "target": durability_of(dst)}
        seeded = seed_app_database(src.dsn, accounts)
        counts = row_counts(src.dsn)
        rows = sum(counts.values())
        t0 = time.monotonic()
        db.start_replication(src.dsn, dst.dsn)
        with db.connect(src.dsn, "s") as s, db.connect(dst.dsn, "t") as t:
            for _ in range(12000):  # at most ~10 min
                if db.lag(s, t).zero:
                    break
                time.sleep(0.05)
        repl = time.monotonic() - t0
        if row_counts(dst.dsn) != counts:
            raise RuntimeError("logical copy differs from the source")
        with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
            c.execute("CREATE DATABASE copy2")
        # dump/restore of the same rows (from the source database)
        t0 = time.monotonic()
        db.dump_restore(src.dsn, dst.dsn_for("copy2"), jobs=2)
        dump = time.monotonic() - t0
        if row_counts(dst.dsn_for("copy2")) != counts:
            raise RuntimeError("dump/restore copy differs from the source")
        with db.connect(dst.dsn, "t") as t:
            t.execute(f"DROP SUBSCRIPTION {db.NAME}")
        return {"seed": seeded, "tables": len(counts), "rows": rows,
                "largest_tables": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:5]),
                "logical_s": round(repl, 2), "logical_rows_per_s": round(rows / repl),
                "dump_restore_s": round(dump, 2), "dump_restore_rows_per_s": round(rows / dump),
                "load_avg_1m": round(os.getloadavg()[0], 1), "durability": reported}
    finally:
        dst.stop()
        src.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20_000, help="app accounts to seed")
    ap.add_argument("--durability", choices=DURABILITY, default="production",
                    help="PostgreSQL durability (default production, as deployed)")
    ap.add_argument("--data", type=Path, default=None,
                    help="keep the seeded source here and reuse it on the next run")
    ap.add_argument("--min-gb", type=float, default=0.0,
                    help="seed until the source database holds this many GB")
    ap.add_argument("--seed-batch", type=int, default=100_000, help="accounts per seed batch")
    ap.add_argument("--seed-only", action="store_true", help="seed --data, measure nothing")
    args = ap.parse_args()
    if args.seed_only:
        if args.data is None:
            ap.error("--seed-only needs --data DIR")
        args.data.mkdir(parents=True, exist_ok=True)
        pg, seeded = source_server(args.data, args.durability, int(args.min_gb * 1e9),
                                   args.seed_batch)
        pg.stop()
        print(json.dumps(seeded, indent=1))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        out = {"objects": bench_objects(tmp),
               "database": bench_database(tmp, args.accounts, args.durability)}
    print(json.dumps(out, indent=1))
    write_results(Path(__file__).parent / "results" / "migrate_bench.json", out,
                  script=__file__, settings=vars(args),
                  durability=out["database"].pop("durability"), indent=1)


if __name__ == "__main__":
    main()
