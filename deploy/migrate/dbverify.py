"""Verify a moved database row by row, in bounded chunks, on several connections, outside the
write outage.

Both sides are read in a snapshot (`pg_export_snapshot` at cut-over, `SET TRANSACTION SNAPSHOT`
on every connection): the frozen source, and the target as it was before the app's first write
to it, so the app may already write to the target while this runs. Each table (every leaf table:
a partitioned table's rows are in its partitions) is cut into ranges of its primary key's first
column, boundaries taken from a sample of the source; each range is read on both sides and
reduced to (row count, two sums of the rows' 64-bit text hashes). No value grows with the
table (one md5 over a whole table's text passes PostgreSQL's 1 GB value limit at 10 GB), no range
is sorted. Both sides print rows with the same session settings (time zone, date and float
formats), so equal rows hash equal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from freehold.deploy.migrate import MigrateError

SESSION = ("SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'postgres'",
           "SET extra_float_digits = 3", "SET bytea_output = 'hex'",
           "SET statement_timeout = '30min'")
ROWS_PER_CHUNK = 250_000
SAMPLE_ROWS = 20_000


@dataclass
class Chunk:
    schema: str
    table: str
    column: str | None  # the key column ranges are cut on (None: the whole table at once)
    type: str
    lo: Any = None  # inclusive; None: unbounded
    hi: Any = None  # exclusive; None: unbounded

    def where(self) -> sql.Composable:
        conds: list[sql.Composable] = []
        col = sql.Identifier(self.column) if self.column else None
        for value, op in ((self.lo, ">="), (self.hi, "<")):
            if value is not None and col is not None:
                conds.append(sql.SQL("{} {} {}::{}").format(col, sql.SQL(op), sql.Literal(value),
                                                           sql.SQL(self.type)))
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")

    def label(self) -> str:
        return f"{self.column} in [{self.lo}, {self.hi})" if self.column else "whole table"


@dataclass
class TableResult:
    table: str
    rows_source: int = 0
    rows_target: int = 0
    chunks: int = 0
    differing: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differing and self.rows_source == self.rows_target

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows_source": self.rows_source,
                "rows_target": self.rows_target, "chunks": self.chunks,
                "chunks_differing": len(self.differing), "first_difference":
                self.differing[0] if self.differing else None, "equal": self.equal}


def leaf_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Tables that hold rows (partitions, not their partitioned parent), system schemas out."""
    return conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2").fetchall()


def key_column(conn: psycopg.Connection[Any], schema: str, table: str
               ) -> tuple[str, str] | None:
    """(name, type) of the first column of the table's primary key (else of its replica
    identity index), or None."""
    row = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = %s::regclass AND (i.indisprimary OR i.indisreplident)"
        " ORDER BY i.indisprimary DESC LIMIT 1",
        (sql.Identifier(schema, table).as_string(conn),)).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def chunks_of(conn: psycopg.Connection[Any], schema: str, table: str,
              rows_per_chunk: int = ROWS_PER_CHUNK) -> list[Chunk]:
    """The table's key ranges, about `rows_per_chunk` rows each (boundaries from a sample)."""
    key = key_column(conn, schema, table)
    if key is None:
        return [Chunk(schema, table, None, "")]
    est = conn.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s"
                       "::regclass", (sql.Identifier(schema, table).as_string(conn),)
                       ).fetchone()[0]
    if est == 0:  # never analysed: count (the planner's estimate is unknown)
        est = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(schema, table))).fetchone()[0]
    n = int(est) // rows_per_chunk + 1
    if n <= 1:
        return [Chunk(schema, table, *key)]
    pct = min(100.0, max(0.001, 100.0 * SAMPLE_ROWS / int(est)))
    fractions = [i / n for i in range(1, n)]
    q = sql.SQL("SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {}) "
                "FROM {} TABLESAMPLE SYSTEM ({})").format(
        sql.Identifier(key[0]), sql.Identifier(schema, table), sql.Literal(pct))
    bounds = conn.execute(q, (fractions,)).fetchone()[0] or []
    edges = [None, *sorted(set(b for b in bounds if b is not None)), None]
    return [Chunk(schema, table, key[0], key[1], lo, hi)
            for lo, hi in zip(edges, edges[1:], strict=False)]


def digest(conn: psycopg.Connection[Any], c: Chunk) -> tuple[int, int, int]:
    """(rows, sum of high halves, sum of low halves of the rows' 64-bit text hashes)."""
    q = sql.SQL("SELECT count(*), coalesce(sum(h >> 32), 0), coalesce(sum(h & 4294967295), 0) "
                "FROM (SELECT hashtextextended(t::text, 0) AS h FROM {} t{}) x").format(
        sql.Identifier(c.schema, c.table), c.where())
    n, hi, lo = conn.execute(q).fetchone()
    return int(n), int(hi), int(lo)


def _session(dsn: str, snapshot: str | None, what: str) -> psycopg.Connection[Any]:
    """A connection inside one REPEATABLE READ transaction (in `snapshot` when given), with the
    session settings local to it: a transaction-pooling pgbouncer keeps it on one server
    connection."""
    try:
        conn = psycopg.connect(dsn, autocommit=False, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise MigrateError(f"verification: cannot connect to the {what}: "
                           f"{str(e).strip().splitlines()[0]}") from None
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    if snapshot:  # before any query of the transaction
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    for s in SESSION:
        conn.execute(s.replace("SET ", "SET LOCAL ", 1))
    return conn


@contextmanager
def exported_snapshot(dsn: str, what: str) -> Iterator[str]:
    """A REPEATABLE READ transaction held open for the block; yields its exported snapshot
    (other connections import it until the block ends)."""
    conn = _session(dsn, None, what)
    try:
        yield str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])
    finally:
        conn.close()


def verify(src_dsn: str, dst_dsn: str, *, src_snapshot: str | None = None,
           dst_snapshot: str | None = None, workers: int = 2,
           rows_per_chunk: int = ROWS_PER_CHUNK,
           progress: Callable[[int, int, int], None] | None = None,
           timeout: float = 4 * 3600) -> list[dict[str, Any]]:
    """Every leaf table of the source compared with the target, range by range, on `workers`
    pairs of connections; per table rows on each side and the ranges that differ.
    `progress(chunks done, chunks in all, rows done)` is called as ranges finish."""
    with _session(src_dsn, src_snapshot, "source") as plan, _session(
            dst_dsn, dst_snapshot, "target") as probe:
        names = leaf_tables(plan)
        target_tables = set(leaf_tables(probe))
        work = [c for s, t in names for c in chunks_of(plan, s, t, rows_per_chunk)]
    results = {f"{s}.{t}": TableResult(f"{s}.{t}") for s, t in names}
    for s, t in names:
        if (s, t) not in target_tables:
            results[f"{s}.{t}"].differing.append("table missing on the target")
    work = [c for c in work if (c.schema, c.table) in target_tables]
    local = threading.local()
    opened: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()
    done = [0, 0]
    deadline = time.monotonic() + timeout

    def one(c: Chunk) -> None:
        if time.monotonic() > deadline:
            raise MigrateError(f"verification took longer than {timeout:.0f} s — rerun it")
        if not hasattr(local, "pair"):
            local.pair = (_session(src_dsn, src_snapshot, "source"),
                          _session(dst_dsn, dst_snapshot, "target"))
            with lock:
                opened.extend(local.pair)
        a, b = digest(local.pair[0], c), digest(local.pair[1], c)
        with lock:
            r = results[f"{c.schema}.{c.table}"]
            r.rows_source += a[0]
            r.rows_target += b[0]
            r.chunks += 1
            if a != b:
                r.differing.append(f"{c.label()}: {a[0]} rows on the source, {b[0]} on the "
                                   "target" + (", contents differ" if a[0] == b[0] else ""))
            done[0] += 1
            done[1] += a[0]
            if progress:
                progress(done[0], len(work), done[1])

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(one, c) for c in work]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        for conn in opened:
            conn.close()
    return [results[f"{s}.{t}"].as_dict() for s, t in names]
