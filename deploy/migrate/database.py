"""Move a PostgreSQL database: logical replication (or parallel dump/restore), verified cutover."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import psycopg
from psycopg import sql

from freehold.app.pgclient import libpq_target
from freehold.deploy.migrate import MigrateError

NAME = "freehold_migrate"


def connect(dsn: str, what: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "connection refused"
        u = urlparse(dsn)
        raise MigrateError(f"{what} {u.hostname}:{u.port or 5432}/{u.path.lstrip('/')}: "
                           f"{first} — check the address, user and password") from None


def _tool(name: str) -> str:
    for d in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"):
        if shutil.which(name, path=d):
            return f"{d}/{name}"
    found = shutil.which(name)
    if not found:
        raise MigrateError(f"{name} not found — apt-get install postgresql-client-15")
    return found


def _run(cmd: list[str], what: str, env: dict[str, str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["failed"])[-1]
        raise MigrateError(f"{what}: {last}")


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


def schema_commands(src_dsn: str, dst_dsn: str, path: str
                    ) -> list[tuple[list[str], dict[str, str], str]]:
    """(argv, environment, what) of dumping the source's schema to `path` and loading it into
    the target; passwords travel in the environment (app.pgclient), never in argv."""
    src, src_env = libpq_target(src_dsn)
    dst, dst_env = libpq_target(dst_dsn)
    return [([_tool("pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
              "--no-publications", "--no-subscriptions", "-f", path, src], src_env,
             "pg_dump --schema-only"),
            ([_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", path, dst], dst_env,
             "loading the schema into the target")]


def copy_schema(src_dsn: str, dst_dsn: str) -> None:
    with tempfile.NamedTemporaryFile(suffix=".sql") as f:
        for argv, env, what in schema_commands(src_dsn, dst_dsn, f.name):
            _run(argv, what, env)


def start_replication(src_dsn: str, dst_dsn: str) -> str:
    """Schema, publication and subscription (idempotent: a rerun picks up where it stopped)."""
    with connect(src_dsn, "source") as src, connect(dst_dsn, "target") as dst:
        have_sub = dst.execute("SELECT 1 FROM pg_subscription WHERE subname = %s",
                               (NAME,)).fetchone()
        if have_sub:
            return "replicating (subscription already there)"
        if not tables(dst):
            copy_schema(src_dsn, dst_dsn)
        elif any(dst.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(
                sql.Identifier(s), sql.Identifier(t))).fetchone()[0] for s, t in tables(dst)):
            raise MigrateError("target database already holds rows and no subscription — "
                               "give an empty target database")
        if not src.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                           (NAME,)).fetchone():
            src.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(
                sql.Identifier(NAME)))
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
    row = src.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                      "FROM pg_replication_slots WHERE slot_name = %s", (NAME,)).fetchone()
    syncing = dst.execute("SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s "
                          "ON s.oid = r.srsubid WHERE s.subname = %s AND r.srsubstate <> 'r'",
                          (NAME,)).fetchone()[0]
    return Lag(int(row[0]) if row and row[0] is not None else None, int(syncing))


def table_digest(conn: psycopg.Connection[Any], schema: str, table: str) -> tuple[int, str]:
    """(row count, md5 over the rows' text in a stable order)."""
    q = sql.SQL("SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '')"
                " FROM {}.{} t").format(sql.Identifier(schema), sql.Identifier(table))
    n, digest = conn.execute(q).fetchone()
    return int(n), str(digest)


def verify(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    out = []
    for s, t in tables(src):
        a, b = table_digest(src, s, t), table_digest(dst, s, t)
        out.append({"table": f"{s}.{t}", "rows_source": a[0], "rows_target": b[0],
                    "md5_source": a[1], "md5_target": b[1], "equal": a == b})
    return out


def reset_sequences(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> int:
    seqs = src.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences "
                       "WHERE last_value IS NOT NULL").fetchall()
    for s, name, value in seqs:
        dst.execute("SELECT setval(%s::regclass, %s, true)",
                    (sql.Identifier(s, name).as_string(dst), value))
    return len(seqs)


def stop_writes(src: psycopg.Connection[Any]) -> None:
    db = src.info.dbname
    src.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
        sql.Identifier(db)))
    src.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'", (db,))


def cutover(src_dsn: str, dst_dsn: str, timeout: float = 600.0) -> dict[str, Any]:
    """Stop writes, wait for zero lag, verify rows and checksums, reset sequences."""
    with connect(src_dsn, "source") as src, connect(dst_dsn, "target") as dst:
        stop_writes(src)
        src.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + timeout
        while True:
            lg = lag(src, dst)
            if lg.zero:
                break
            if time.monotonic() > deadline:
                raise MigrateError(f"replication lag still {lg.bytes} bytes, "
                                   f"{lg.tables_syncing} tables syncing after {timeout:.0f} s "
                                   "— check the target's log, then rerun --cutover")
            time.sleep(0.2)
        checks = verify(src, dst)
        if not all(c["equal"] for c in checks):
            bad = [c["table"] for c in checks if not c["equal"]]
            raise MigrateError(f"tables differ after zero lag: {', '.join(bad)} — "
                               "writes still reach the source? investigate before cutover")
        nseq = reset_sequences(src, dst)
        dst.execute(sql.SQL("DROP SUBSCRIPTION IF EXISTS {}").format(sql.Identifier(NAME)))
        src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(NAME)))
    return {"tables": checks, "sequences_reset": nseq}


def dump_restore_commands(src_dsn: str, dst_dsn: str, folder: str, jobs: int = 4
                          ) -> list[tuple[list[str], dict[str, str], str]]:
    """(argv, environment, what) of a parallel pg_dump -Fd into `folder` and pg_restore -j
    from it; passwords travel in the environment, never in argv."""
    src, src_env = libpq_target(src_dsn)
    dst, dst_env = libpq_target(dst_dsn)
    return [([_tool("pg_dump"), "-Fd", "-j", str(jobs), "--no-owner", "--no-privileges",
              "-f", f"{folder}/dump", src], src_env, "pg_dump"),
            ([_tool("pg_restore"), "-j", str(jobs), "--no-owner", "--no-privileges",
              "--exit-on-error", "-d", dst, f"{folder}/dump"], dst_env, "pg_restore")]


def dump_restore(src_dsn: str, dst_dsn: str, jobs: int = 4) -> None:
    """When logical replication is impossible: parallel pg_dump -Fd / pg_restore -j."""
    with tempfile.TemporaryDirectory() as d:
        for argv, env, what in dump_restore_commands(src_dsn, dst_dsn, d, jobs):
            _run(argv, what, env)
