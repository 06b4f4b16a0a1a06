"""The database the migration benchmark moves: the app's schema (app.db.migrate) seeded by the
app's own seeder (app.seed, COPY) in batches until `pg_database_size` reaches the size asked for.

A seeded source can be kept in a folder (`--data DIR` of migrate_bench.py) and reused by a later
run: seeding 10 GB takes tens of minutes on 2 cores, and the move is what the benchmark measures.
The folder's `seed.json` records how it was seeded (batches, seconds, rows/s, size, the commit);
a run that reuses it reports that record as its seed, marked `reused`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg

from freehold.app.devstack import Postgres, free_port
from freehold.deploy.provenance import commit_state

MAX_BATCHES = 200


def database_size(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=10) as c:
        return int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def seed_to_size(dsn: str, min_bytes: int, batch: int, max_batches: int = MAX_BATCHES
                 ) -> dict[str, Any]:
    """The app's schema, then app.seed batches of `batch` accounts until the database holds
    `min_bytes` (at most `max_batches` batches); what it took."""
    from freehold.app.db import migrate
    from freehold.deploy.loadtest.seed import run_app_seed

    code = commit_state()  # the code that seeds: the commit at the start (a long seed outlives it)
    migrate(dsn)
    t0 = time.monotonic()
    totals = {"accounts": 0, "follows": 0, "posts": 0, "upvotes": 0}
    batches, size = [], database_size(dsn)
    for i in range(max_batches):
        if i > 0 and size >= min_bytes:  # at least one batch
            break
        tb = time.monotonic()
        rep = run_app_seed(dsn, batch, seed=1 + i)
        size = database_size(dsn)
        for k in totals:
            totals[k] += int(rep[k])
        batches.append({"s": round(time.monotonic() - tb, 1), "rows_per_s": rep["rows_per_s"],
                        "bytes_after": size})
        print(f"seed batch {i + 1}: {batch} accounts in {batches[-1]['s']} s, "
              f"{rep['rows_per_s']} rows/s, database {size / 1e9:.2f} GB", flush=True)
    seconds = time.monotonic() - t0
    rows = totals["accounts"] + totals["follows"] + 2 * totals["posts"] + totals["upvotes"]
    return {**totals, "batches": len(batches), "batch_accounts": batch,
            "seed_s": round(seconds, 1), "rows_written": rows,
            "rows_per_s": round(rows / seconds) if seconds else 0,
            "database_bytes": size, "per_batch": batches, **code}


def source_server(data: Path, durability: str, min_bytes: int, batch: int
                  ) -> tuple[Postgres, dict[str, Any]]:
    """A started source PostgreSQL in `data`: the one seeded there before (restarted on a
    fresh port, writable again) when its seed.json says it reached `min_bytes`, else a new one
    seeded now. Stop it with its stop()."""
    record = data / "seed.json"
    if record.exists():
        seeded = json.loads(record.read_text())
        if (seeded.get("database_bytes", 0) >= min_bytes
                and seeded.get("durability") == durability):
            pg = Postgres(data / "pg", durability=durability)
            with (data / "pg" / "pgdata" / "postgresql.conf").open("a") as f:
                f.write(f"port = {pg.port}\n")  # the last line wins
            pg.restart()
            _writable_again(pg)
            return pg, {**seeded, "reused": True}
        raise SystemExit(f"{data}: seeded to {seeded.get('database_bytes')} bytes with "
                         f"{seeded.get('durability')} durability — remove the folder to seed "
                         "again")
    pg = Postgres(data / "pg", durability=durability, port=free_port()).start()
    seeded = {**seed_to_size(pg.dsn, min_bytes, batch), "durability": durability}
    record.write_text(json.dumps(seeded, indent=1) + "\n")
    return pg, {**seeded, "reused": False}


def _writable_again(pg: Postgres) -> None:
    """Undo what an earlier run's cut-over left on the source (frozen, publication there)."""
    with psycopg.connect(pg.dsn_for("postgres"), autocommit=True) as c:
        c.execute(f"ALTER DATABASE {pg.database} RESET default_transaction_read_only")
    with psycopg.connect(pg.dsn, autocommit=True) as c:
        c.execute("DROP PUBLICATION IF EXISTS freehold_migrate")
        for (slot,) in c.execute("SELECT slot_name FROM pg_replication_slots").fetchall():
            c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
