"""Tables the source creates while it replicates (a new feature's table, an extension's),
created on the target and added to the subscription so their rows follow.

Logical replication copies no DDL. The publication is FOR ALL TABLES, so a new table is
published at once, but the subscription only learns of it on `ALTER SUBSCRIPTION ... REFRESH
PUBLICATION`, and the target must hold the table first. `name` is the publication's and the
subscription's (database.NAME). `sync_tables` does both whenever the
tool runs (at the start, on every --watch poll, before a cut-over): the tables' definitions come
from `pg_dump --schema-only --table` of the source (columns, defaults, owned sequences and
identities, keys, indexes, constraints, triggers) restored into the target in one transaction;
then the refresh starts their initial copy (copy_data), rows written before included, and the
cut-over waits until it has finished like any other table's.

Partitions of a partitioned table are not new tables here: their rows travel as the root's
(dbpartitions creates them).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from freehold.app.pgclient import libpq_target
from freehold.deploy.migrate import MigrateError, dbschema

_PUBLISHED = "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s"


def _quoted(schema: str, table: str) -> str:
    """A pg_dump --table pattern naming exactly this table: each part double-quoted (inside
    quotes `*`, `?` and `.` are plain characters; a double quote is written twice)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))


def missing(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], name: str
            ) -> list[tuple[str, str]]:
    """The tables the source publishes that the target does not have at all."""
    published = src.execute(_PUBLISHED, (name,)).fetchall()
    qualified = [sql.Identifier(s, t).as_string(dst) for s, t in published]
    absent = {r[0] for r in dst.execute(  # one query per poll, however many tables
        "SELECT q FROM unnest(%s::text[]) q WHERE to_regclass(q) IS NULL",
        (qualified,)).fetchall()}
    return sorted((s, t) for (s, t), q in zip(published, qualified, strict=True) if q in absent)


def unsubscribed(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], name: str
                 ) -> list[tuple[str, str]]:
    """The tables the source publishes that the subscription does not copy (yet)."""
    published = {tuple(r) for r in src.execute(_PUBLISHED, (name,)).fetchall()}
    subscribed = {tuple(r) for r in dst.execute(
        "SELECT n.nspname, c.relname FROM pg_subscription_rel r JOIN pg_subscription s "
        "ON s.oid = r.srsubid JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE s.subname = %s", (name,)).fetchall()}
    return sorted(published - subscribed)  # type: ignore[arg-type]


def dump_tables_command(src_dsn: str, tables: Sequence[tuple[str, str]], path: str
                        ) -> dbschema.Command:
    target, env = libpq_target(src_dsn)
    pats = [a for s, t in tables for a in ("--table", _quoted(s, t))]
    return ([dbschema.tool("pg_dump"), "--schema-only", "-Fc", "--no-publications",
             "--no-subscriptions", "--no-owner", "--no-privileges", *pats, "-f", path, target],
            env, "pg_dump --schema-only of the new tables")


def create_on_target(src_dsn: str, dst_dsn: str, tables: Sequence[tuple[str, str]]) -> None:
    """The tables' definitions from the source into the target, in one transaction."""
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/new-tables.dump"
        argv, env, what = dump_tables_command(src_dsn, tables, path)
        dbschema.run_tool(argv, what, env, timeout=600)
        target, tenv = libpq_target(dst_dsn)
        dbschema.run_tool([dbschema.tool("pg_restore"), "--single-transaction", "--no-owner",
                           "--no-privileges", "--exit-on-error", "-d", target, path],
                          "creating the new tables on the target", tenv, timeout=600)


def sync_tables(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], src_dsn: str,
                dst_dsn: str, name: str) -> list[str]:
    """Create on the target the published tables it lacks, then refresh the subscription so
    it copies them (and any published table it does not copy yet); what was done, one line
    each. A MigrateError (one line) names the table and the fix when it cannot."""
    new = missing(src, dst, name)
    done = []
    if new:
        names = ", ".join(f"{s}.{t}" for s, t in new)
        try:
            create_on_target(src_dsn, dst_dsn, new)
        except MigrateError as e:
            raise MigrateError(f"creating {names} on the target: {e} — create them there by "
                               "hand (pg_dump --schema-only --table of the source), then "
                               "rerun") from None
        done.append(f"created table{'s' if len(new) > 1 else ''} {names} on the target")
    if not dst.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)).fetchone():
        return done  # cut over already, or not replicating: nothing to refresh
    todo = unsubscribed(src, dst, name)
    if todo:
        dst.execute(sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION").format(
            sql.Identifier(name)))
        done.append(f"subscription refreshed: copying {', '.join(f'{s}.{t}' for s, t in todo)}")
    return done
