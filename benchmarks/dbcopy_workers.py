"""Does the logical copy gain from more tables copied at once? The first consistent copy (indexes
built after it, deploy.migrate.dbschema) of one seeded source into fresh target databases with
the target's max_sync_workers_per_subscription at each of --workers, alternated over --rounds.

Run: nice -n 10 .venv/bin/python benchmarks/dbcopy_workers.py --data DIR (a source seeded by
`migrate_bench.py --seed-only --data DIR`) → prints figures, writes
benchmarks/results/dbcopy_workers.json (run header: commit, settings, durability).
No writer runs during these copies (migrate_bench.py measures the move under one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dbseed import database_size, source_server  # noqa: E402
from migrate_bench import first_copy  # noqa: E402
from resultsfile import write_results  # noqa: E402

from freehold.app.devstack import DURABILITY, Postgres, durability_of  # noqa: E402
from freehold.deploy.migrate import database as db  # noqa: E402


def one_copy(src: Postgres, dst: Postgres, workers: int, timeout: float) -> dict[str, Any]:
    with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
        c.execute(f"ALTER SYSTEM SET max_sync_workers_per_subscription = {workers}")
        c.execute("SELECT pg_reload_conf()")
        c.execute("CREATE DATABASE copy_w")
    time.sleep(1.0)  # the reload reaches the launcher
    try:
        return first_copy(src, dst.dsn_for("copy_w"), timeout, defer_indexes=True,
                          jobs=os.cpu_count() or 2)
    finally:
        with psycopg.connect(dst.dsn_for("copy_w"), autocommit=True) as c:
            c.execute(f"DROP SUBSCRIPTION IF EXISTS {db.NAME}")  # drops the source's slot
        with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
            c.execute("DROP DATABASE copy_w WITH (FORCE)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True, help="a seeded source (migrate_bench)")
    ap.add_argument("--min-gb", type=float, default=0.0)
    ap.add_argument("--durability", choices=DURABILITY, default="production")
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--copy-timeout", type=float, default=3600)
    args = ap.parse_args()
    src, seeded = source_server(args.data, args.durability, int(args.min_gb * 1e9), 1)
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        dst = Postgres(Path(d) / "pgd", durability=args.durability, extra_conf={
            "max_logical_replication_workers": "16", "max_worker_processes": "24"}).start()
        try:
            runs: list[dict[str, Any]] = []
            for r in range(args.rounds):
                order = args.workers if r % 2 == 0 else list(reversed(args.workers))
                for w in order:
                    res = {"round": r + 1, "sync_workers": w,
                           **one_copy(src, dst, w, args.copy_timeout)}
                    print(json.dumps(res), flush=True)
                    runs.append(res)
            durability = {"source": durability_of(src), "target": durability_of(dst)}
            size = database_size(src.dsn)
        finally:
            dst.stop()
            src.stop()
    by = {w: [x["first_consistent_copy_s"] for x in runs if x["sync_workers"] == w]
          for w in args.workers}
    summary = {"database_bytes": size, "cpus": os.cpu_count(),
               "first_consistent_copy_s": {str(w): v for w, v in by.items()},
               "mean_s": {str(w): round(statistics.mean(v), 1) for w, v in by.items()},
               "min_s": {str(w): min(v) for w, v in by.items()}}
    print("summary", json.dumps(summary), flush=True)
    write_results(Path(__file__).parent / "results" / "dbcopy_workers.json",
                  {"summary": summary, "runs": runs, "seed": seeded}, script=__file__,
                  settings=vars(args), durability=durability, indent=1)


if __name__ == "__main__":
    main()
