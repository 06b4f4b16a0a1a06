"""Move a PostgreSQL database: logical replication (or parallel dump/restore), verified cutover."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import psycopg
from psycopg import sql

from freehold.app.pgclient import libpq_target
from freehold.deploy.migrate import MigrateError, dbnewtables, dbpartitions, dbschema

NAME = "freehold_migrate"


def connect(dsn: str, what: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "connection refused"
        u = urlparse(dsn)
        raise MigrateError(f"{what} {u.hostname}:{u.port or 5432}/{u.path.lstrip('/')}: "
                           f"{first} — check the address, user and password") from None


def tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
        "('pg_catalog','information_schema') ORDER BY 1, 2").fetchall()


def can_replicate_logically(src: psycopg.Connection[Any]) -> tuple[bool, str]:
    wal = src.execute("SHOW wal_level").fetchone()[0]
    if wal != "logical":
        return False, f"wal_level is {wal} (RDS: set rds.logical_replication=1 and reboot)"
    ok = src.execute("SELECT rolsuper OR rolreplication FROM pg_roles "
                     "WHERE rolname = current_user").fetchone()[0]
    return (True, "") if ok else (False, "the source user may not replicate")


def copy_schema(src_dsn: str, dst_dsn: str, *, defer_indexes: bool = True) -> int:
    """The source's schema into the empty target, the indexes the initial copy does not need
    left out with `defer_indexes` (dbschema); returns how many schema entries were deferred."""
    with connect(src_dsn, "source") as src:
        return dbschema.load_schema(src, src_dsn, dst_dsn, defer_indexes=defer_indexes)


def start_replication(src_dsn: str, dst_dsn: str, *, defer_indexes: bool = True) -> str:
    """Schema, publication and subscription (idempotent: a rerun picks up where it stopped).
    Partitions publish through their root, so partitions the source adds later need no change
    to the publication (dbpartitions)."""
    with connect(src_dsn, "source") as src, connect(dst_dsn, "target") as dst:
        have_sub = dst.execute("SELECT 1 FROM pg_subscription WHERE subname = %s",
                               (NAME,)).fetchone()
        if have_sub:
            return "replicating (subscription already there)"
        if not tables(dst):
            copy_schema(src_dsn, dst_dsn, defer_indexes=defer_indexes)
        elif any(dst.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(
                sql.Identifier(s), sql.Identifier(t))).fetchone()[0] for s, t in tables(dst)):
            raise MigrateError("target database already holds rows and no subscription — "
                               "give an empty target database")
        if not src.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                           (NAME,)).fetchone():
            src.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES WITH "
                                "(publish_via_partition_root = true)").format(
                sql.Identifier(NAME)))
        else:  # left by a run before partitions published through their root
            src.execute(sql.SQL("ALTER PUBLICATION {} SET (publish_via_partition_root = true)"
                                ).format(sql.Identifier(NAME)))
        dst.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
            sql.Identifier(NAME), sql.Literal(src_dsn), sql.Identifier(NAME)))
    return "replicating (subscription created)"


@dataclass
class Lag:
    bytes: int | None
    tables_syncing: int

    @property
    def zero(self) -> bool:
        return self.bytes == 0 and self.tables_syncing == 0


def lag(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> Lag:
    row = src.execute("SELECT greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), "
                      "confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots "
                      "WHERE slot_name = %s", (NAME,)).fetchone()
    syncing = dst.execute("SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s "
                          "ON s.oid = r.srsubid WHERE s.subname = %s AND r.srsubstate <> 'r'",
                          (NAME,)).fetchone()[0]
    return Lag(int(row[0]) if row and row[0] is not None else None, int(syncing))


@dataclass
class CopyProgress:
    tables: int  # in the subscription (a partitioned table counts once: its root)
    tables_ready: int
    bytes_source: int
    bytes_target: int
    lag_bytes: int | None
    indexes_missing: int = 0  # the source's indexes the target lacks or holds invalid

    @property
    def copied(self) -> bool:
        return self.tables_ready == self.tables > 0

    @property
    def consistent(self) -> bool:
        """The first consistent copy: every table copied and streaming, every index built,
        (almost) no lag."""
        return (self.copied and self.indexes_missing == 0 and self.lag_bytes is not None
                and self.lag_bytes <= NEAR_ZERO_LAG)


NEAR_ZERO_LAG = 1 << 20  # bytes: WAL the source writes for itself (checkpoints) keeps it above 0


def copy_progress(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> CopyProgress:
    """Tables copied (subscription state 'r'), table bytes on each side (heap and TOAST,
    indexes left out: the target builds its own), indexes still to build."""
    q = ("SELECT coalesce(sum(pg_table_size(c.oid)), 0)::bigint FROM pg_class c "
         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
         "AND n.nspname NOT IN ('pg_catalog', 'information_schema')")
    src_bytes, dst_bytes = src.execute(q).fetchone()[0], dst.execute(q).fetchone()[0]
    n, ready = dst.execute("SELECT count(*), count(*) FILTER (WHERE r.srsubstate = 'r') "
                           "FROM pg_subscription_rel r JOIN pg_subscription s "
                           "ON s.oid = r.srsubid WHERE s.subname = %s", (NAME,)).fetchone()
    return CopyProgress(int(n), int(ready), int(src_bytes), int(dst_bytes), lag(src, dst).bytes,
                        len(dbschema.index_gaps(src, dst)))


def advance(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], src_dsn: str,
            dst_dsn: str, *, jobs: int = 2, index_memory: str = dbschema.INDEX_MEMORY
            ) -> list[str]:
    """One pass of what the target needs while it replicates: the partitions and the tables the
    source added (dbnewtables: created, then copied by the subscription), and once every table
    is copied, the deferred indexes (`jobs` at a time; blocks until
    built). Returns what it did, one line each."""
    done = dbpartitions.sync_partitions(src, dst)
    done += dbnewtables.sync_tables(src, dst, src_dsn, dst_dsn, NAME)
    if copy_progress(src, dst).copied and dbschema.index_gaps(src, dst):
        t0 = time.monotonic()
        n = dbschema.build_deferred_indexes(src, dst, src_dsn, dst_dsn, jobs=jobs,
                                            memory=index_memory)
        done.append(f"built {n} deferred index entries in {time.monotonic() - t0:.1f} s")
    return done


def replication_gaps(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> list[str]:
    """What would leave the target short at a cut-over, one line each: tables the source
    publishes that the subscription lacks, indexes missing or invalid on the target."""
    gaps = [f"table {s}.{t} is not replicated (created on the source after replication "
            "started): run freehold migrate database --watch SECONDS (it creates the table on "
            "the target and copies it)" for s, t in dbnewtables.unsubscribed(src, dst, NAME)]
    missing = dbschema.index_gaps(src, dst)
    if missing:
        gaps.append(f"{len(missing)} index(es) missing or invalid on the target "
                    f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}): run "
                    "freehold migrate database --watch SECONDS until the copy is consistent "
                    "(it builds them)")
    return gaps


def reset_sequences(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> int:
    seqs = src.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences "
                       "WHERE last_value IS NOT NULL").fetchall()
    for s, name, value in seqs:
        dst.execute("SELECT setval(%s::regclass, %s, true)",
                    (sql.Identifier(s, name).as_string(dst), value))
    return len(seqs)


def stop_writes(src: psycopg.Connection[Any], timeout: float = 30.0) -> int:
    """Freeze the source: new sessions read-only, every other client session ended (waited
    for, so no commit is still on its way); returns how many sessions were ended."""
    db = src.info.dbname
    src.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
        sql.Identifier(db)))
    others = ("FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
              "AND backend_type = 'client backend'")
    ended = src.execute(f"SELECT count(pg_terminate_backend(pid)) {others}", (db,)).fetchone()[0]
    deadline = time.monotonic() + timeout
    while src.execute(f"SELECT count(*) {others}", (db,)).fetchone()[0]:
        if time.monotonic() > deadline:
            raise MigrateError(f"source sessions still open {timeout:.0f} s after ending them — "
                               "check pg_stat_activity on the source, then rerun --cutover")
        src.execute(f"SELECT pg_terminate_backend(pid) {others}", (db,))
        time.sleep(0.05)
    return int(ended)


def frozen(src: psycopg.Connection[Any]) -> bool:
    """Whether the source database was made read-only by a cut-over (stop_writes)."""
    row = src.execute("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d "
                      "ON d.oid = s.setdatabase WHERE d.datname = current_database() "
                      "AND s.setrole = 0").fetchone()
    return bool(row and "default_transaction_read_only=on" in (row[0] or []))


def unfreeze(src_dsn: str) -> None:
    """Roll back a cut-over: the source takes writes again (the app must point at it)."""
    with connect(src_dsn, "source") as src:
        src.execute("SET default_transaction_read_only = off")
        src.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
            sql.Identifier(src.info.dbname)))


def _quick_check(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> list[str]:
    """Inside the outage, cheap: each table's largest key (an index look-up) on both sides."""
    from freehold.deploy.migrate.dbverify import key_column, leaf_tables

    bad = []
    for s, t in leaf_tables(src):
        key = key_column(src, s, t)
        if key is None:
            continue
        q = sql.SQL("SELECT {0} FROM {1} ORDER BY {0} DESC LIMIT 1").format(
            sql.Identifier(key[0]), sql.Identifier(s, t))
        if src.execute(q).fetchone() != dst.execute(q).fetchone():
            bad.append(f"{s}.{t}")
    return bad


def _drain(src: psycopg.Connection[Any], freeze_lsn: str, timeout: float) -> float:
    """Wait until the subscriber confirmed every WAL byte written before the freeze."""
    t0 = time.monotonic()
    while True:
        row = src.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                          "WHERE slot_name = %s", (freeze_lsn, NAME)).fetchone()
        if row is None:
            raise MigrateError("the source has no replication slot freehold_migrate — the "
                               "subscription was dropped; run freehold migrate database again")
        if row[0]:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise MigrateError(f"the target did not catch up within {timeout:.0f} s (source "
                               "frozen) — check the target's log; rerun --cutover, or "
                               "--rollback to let the source take writes again")
        time.sleep(0.02)


def cutover(src_dsn: str, dst_dsn: str, timeout: float = 600.0, *, max_lag: int = 256 << 20,
            workers: int = 2, rows_per_chunk: int = 250_000,
            on_ready: Callable[[dict[str, Any]], None] | None = None,
            progress: Callable[[int, int, int], None] | None = None) -> dict[str, Any]:
    """Freeze the source, wait until the target has every write, check the largest keys,
    reset sequences, drop the subscription, take a snapshot of the target: `on_ready(window)`
    is told the target may take writes. Then verify the frozen source against that snapshot,
    chunk by chunk (dbverify), while the app writes to the target. The source stays frozen
    (read-only) and intact: `unfreeze` rolls back."""
    from freehold.deploy.migrate import dbverify

    with connect(src_dsn, "source") as src, connect(dst_dsn, "target") as dst:
        src.execute("SET default_transaction_read_only = off")  # a rerun, after a freeze
        if not dst.execute("SELECT 1 FROM pg_subscription WHERE subname = %s",
                           (NAME,)).fetchone():
            if frozen(src):
                raise MigrateError("cut-over already handed over: the source is frozen and "
                                   "the subscription gone, the target is the primary — "
                                   "nothing to do (--rollback only if the app still uses the "
                                   "source)")
            raise MigrateError("the target has no subscription freehold_migrate — run "
                               "freehold migrate database (without --cutover) first")
        dbpartitions.sync_partitions(src, dst)
        created = dbnewtables.sync_tables(src, dst, src_dsn, dst_dsn, NAME)
        before = copy_progress(src, dst)
        if before.tables_ready < before.tables:
            raise MigrateError(f"initial copy not finished: {before.tables_ready}/"
                               f"{before.tables} tables ready"
                               f"{' (' + '; '.join(created) + ')' if created else ''}"
                               " — wait for it (freehold migrate "
                               "database --watch 600), then rerun --cutover; nothing stopped")
        gaps = replication_gaps(src, dst)
        if gaps:
            raise MigrateError(f"{gaps[0]} — then rerun --cutover; nothing stopped")
        if before.lag_bytes is None or before.lag_bytes > max_lag:
            raise MigrateError(f"replication lag {before.lag_bytes} bytes > {max_lag} — wait "
                               "until the target catches up, then rerun --cutover; nothing "
                               "stopped")
        t0 = time.monotonic()
        ended = stop_writes(src)
        freeze_lsn, lag_bytes = src.execute(
            "SELECT pg_current_wal_lsn()::text, greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), "
            "confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots WHERE slot_name = %s",
            (NAME,)).fetchone()
        replay = src.execute("SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication "
                             "WHERE application_name = %s", (NAME,)).fetchone()
        drain_s = _drain(src, freeze_lsn, timeout)
        # a partition added since the check above: created now, its rows moved in (outage)
        late = dbpartitions.sync_partitions(src, dst)
        # a table created between the checks above and the freeze was never copied: stop here
        new = dbnewtables.unsubscribed(src, dst, NAME)
        if new:
            raise MigrateError(f"table {new[0][0]}.{new[0][1]} was created on the source just "
                               "before the freeze and is not on the target — the source stays "
                               "frozen: --rollback, then rerun --cutover (it copies the table "
                               "first)")
        bad = _quick_check(src, dst)
        if bad:
            raise MigrateError(f"largest keys differ after catching up: {', '.join(bad)} — "
                               "the source stays frozen; investigate, then --rollback or rerun")
        nseq = reset_sequences(src, dst)
        dst.execute(sql.SQL("DROP SUBSCRIPTION IF EXISTS {}").format(sql.Identifier(NAME)))
        src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(NAME)))
        with dbverify.exported_snapshot(src_dsn, "source") as src_snap, \
                dbverify.exported_snapshot(dst_dsn, "target") as dst_snap:
            window = {"frozen_s": round(time.monotonic() - t0, 3), "sessions_ended": ended,
                      "lag_at_freeze_bytes": int(lag_bytes),
                      "replay_lag_at_freeze_s": float(replay[0]) if replay and replay[0]
                      is not None else None, "drain_s": round(drain_s, 3),
                      "sequences_reset": nseq, "partitions_created_in_outage": late}
            if on_ready:
                on_ready(window)
            t1 = time.monotonic()
            tables = dbverify.verify(src_dsn, dst_dsn, src_snapshot=src_snap,
                                     dst_snapshot=dst_snap, workers=workers,
                                     rows_per_chunk=rows_per_chunk, progress=progress)
    return {**window, "verify_s": round(time.monotonic() - t1, 1), "tables": tables,
            "rows_verified": sum(t["rows_source"] for t in tables),
            "tables_differing": [t["table"] for t in tables if not t["equal"]]}


def dump_restore_commands(src_dsn: str, dst_dsn: str, folder: str, jobs: int = 4
                          ) -> list[tuple[list[str], dict[str, str], str]]:
    """(argv, environment, what) of a parallel pg_dump -Fd into `folder` and pg_restore -j
    from it; passwords travel in the environment, never in argv."""
    src, src_env = libpq_target(src_dsn)
    dst, dst_env = libpq_target(dst_dsn)
    return [([dbschema.tool("pg_dump"), "-Fd", "-j", str(jobs), "--no-owner", "--no-privileges",
              "-f", f"{folder}/dump", src], src_env, "pg_dump"),
            ([dbschema.tool("pg_restore"), "-j", str(jobs), "--no-owner", "--no-privileges",
              "--exit-on-error", "-d", dst, f"{folder}/dump"], dst_env, "pg_restore")]


def dump_restore(src_dsn: str, dst_dsn: str, jobs: int = 4) -> None:
    """When logical replication is impossible: parallel pg_dump -Fd / pg_restore -j."""
    with tempfile.TemporaryDirectory() as d:
        for argv, env, what in dump_restore_commands(src_dsn, dst_dsn, d, jobs):
            dbschema.run_tool(argv, what, env)
