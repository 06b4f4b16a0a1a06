"""Partitions the source creates while it replicates (the app adds a month of `posts` ahead, daily
job app.worker.trends), created on the target before their rows reach it.

Logical replication copies no DDL. The publication publishes partitions through their root
(`publish_via_partition_root`): a new partition's rows arrive as rows of `posts`, which the
subscription already has, so no ALTER PUBLICATION / REFRESH is needed; the target routes them to
its own partition, which `sync_partitions` creates (same bounds) whenever the tool runs: at the
start, on every --watch poll, before the freeze and after the drain of a cut-over. Rows that
arrived before that (the source wrote to a partition the tool had not seen yet) sit in the
target's default partition: they are moved into the new partition in one transaction, under
session_replication_role = replica so no foreign key action fires. A target without a default
partition holds the apply worker (it retries) until the partition exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from freehold.deploy.migrate import MigrateError


@dataclass(frozen=True)
class Partition:
    schema: str
    name: str
    parent_schema: str
    parent: str
    bound: str  # pg_get_expr(relpartbound): "FOR VALUES FROM (..) TO (..)", "DEFAULT", ...
    constraint: str | None  # pg_get_partition_constraintdef: the rows that belong in it
    partition_by: str | None  # a partition that is partitioned itself: its key

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


_PARTITIONS = (
    "SELECT n.nspname, c.relname, pn.nspname, p.relname, pg_get_expr(c.relpartbound, c.oid),"
    " pg_get_partition_constraintdef(c.oid),"
    " CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END"
    " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_namespace pn ON pn.oid = p.relnamespace"
    " WHERE p.relkind = 'p' AND c.relkind IN ('r', 'p')"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " ORDER BY (SELECT count(*) FROM pg_partition_ancestors(c.oid)), 1, 2")


def partitions(conn: psycopg.Connection[Any]) -> list[Partition]:
    """Every partition, parents before their children."""
    return [Partition(*r) for r in conn.execute(_PARTITIONS).fetchall()]


def create_statement(p: Partition) -> sql.Composed:
    return sql.SQL("CREATE TABLE {} PARTITION OF {} {}{}").format(
        sql.Identifier(p.schema, p.name), sql.Identifier(p.parent_schema, p.parent),
        sql.SQL(p.bound),
        sql.SQL(f" PARTITION BY {p.partition_by}" if p.partition_by else ""))


def _default_of(dst: psycopg.Connection[Any], p: Partition) -> str | None:
    row = dst.execute(
        "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
        (sql.Identifier(p.parent_schema, p.parent).as_string(dst),)).fetchone()
    return str(row[0]) if row else None


def _columns(dst: psycopg.Connection[Any], p: Partition) -> sql.Composable:
    names = [r[0] for r in dst.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (sql.Identifier(p.parent_schema, p.parent).as_string(dst),)).fetchall()]
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _create_moving_rows(dst: psycopg.Connection[Any], p: Partition, default: str) -> int:
    """Create `p` on the target, moving the rows that reached its default partition first;
    returns how many moved."""
    cols, where = _columns(dst, p), sql.SQL(p.constraint or "false")
    with dst.transaction():
        dst.execute("SET LOCAL session_replication_role = replica")  # no FK actions fire
        dst.execute(sql.SQL("CREATE TEMP TABLE freehold_moving ON COMMIT DROP AS "
                            "SELECT {} FROM ONLY {} WHERE {}").format(
            cols, sql.SQL(default), where))
        moved = dst.execute(sql.SQL("DELETE FROM ONLY {} WHERE {}").format(
            sql.SQL(default), where)).rowcount
        dst.execute(create_statement(p))
        dst.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM freehold_moving").format(
            sql.Identifier(p.schema, p.name), cols, cols))
    return int(moved)


def sync_partitions(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> list[str]:
    """Create on the target the source's partitions it lacks (parents first); what was done,
    one line each. A MigrateError (one line) when one cannot be made."""
    have = {(p.schema, p.name) for p in partitions(dst)}
    done = []
    for p in partitions(src):
        if (p.schema, p.name) in have:
            continue
        if dst.execute("SELECT to_regclass(%s)", (sql.Identifier(p.schema, p.name).as_string(
                dst),)).fetchone()[0] is not None:
            raise MigrateError(f"{p.label} is a partition of {p.parent} on the source but a "
                               "table of its own on the target — attach it there (ALTER TABLE "
                               f"{p.parent} ATTACH PARTITION {p.name} {p.bound}), then rerun")
        try:
            with dst.transaction():
                dst.execute(create_statement(p))
            done.append(f"created partition {p.label}")
            continue
        except psycopg.errors.CheckViolation:
            default = _default_of(dst, p)
        except psycopg.Error as e:
            raise MigrateError(f"creating partition {p.label} on the target: "
                               f"{str(e).strip().splitlines()[0]} — create it there by hand "
                               f"({create_statement(p).as_string(dst)}), then rerun") from None
        if default is None:
            raise MigrateError(f"creating partition {p.label} on the target: rows in the way "
                               "and no default partition — investigate, then rerun")
        try:
            moved = _create_moving_rows(dst, p, default)
        except psycopg.errors.InsufficientPrivilege:
            raise MigrateError(f"partition {p.label}: its rows reached the target's {default} "
                               "before it existed there; moving them needs a superuser on the "
                               "target — rerun as one") from None
        done.append(f"created partition {p.label}, moved {moved} rows from {default}")
    return done
