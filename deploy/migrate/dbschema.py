"""The target's schema in two steps, the way pg_restore orders a restore: data first, then indexes.

Logical replication's initial copy COPYs every table into the target; each index present then is
updated row by row (random B-tree inserts, each one WAL-logged), which made the copy 4.9x slower
than pg_dump/pg_restore, which builds indexes once the data is in (one sort each). So the target
gets its schema from the source's `pg_dump --schema-only -Fc` archive split by its table of
contents (`pg_restore -l`):
- now: everything but the deferred indexes: tables, primary keys (logical replication needs a
  replica identity), replica identity indexes, unique keys that a foreign key references (the
  foreign key needs them), foreign keys (their triggers do not fire under replication: no cost);
- after the initial copy: the other indexes and unique/exclusion constraints, built by
  `pg_restore -j N` with maintenance_work_mem raised for its sessions.
`index_gaps` compares the indexes of both sides by table and definition (not by name); the
cut-over refuses while any is missing or invalid on the target.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from freehold.app.pgclient import libpq_target
from freehold.deploy.migrate import MigrateError

INDEX_MEMORY = "1GB"  # maintenance_work_mem of the sessions that build the deferred indexes
_TOC = re.compile(r"^(\d+); (\d+) (\d+) (.+)$")
_PG_CLASS, _PG_CONSTRAINT = 1259, 2606


def tool(name: str) -> str:
    import shutil

    for d in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"):
        if shutil.which(name, path=d):
            return f"{d}/{name}"
    found = shutil.which(name)
    if not found:
        raise MigrateError(f"{name} not found — apt-get install postgresql-client-15")
    return found


def run_tool(cmd: list[str], what: str, env: dict[str, str], timeout: float = 4 * 3600
             ) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["failed"])[-1]
        raise MigrateError(f"{what}: {last}")
    return r.stdout


@dataclass(frozen=True)
class TocEntry:
    line: str  # as `pg_restore -l` prints it; a list of such lines drives `pg_restore -L`
    catalog: int  # the catalog the object lives in (pg_class, pg_constraint; 0: none)
    oid: int
    desc: str  # "INDEX", "CONSTRAINT", "INDEX ATTACH", ...
    schema: str
    name: str  # for INDEX ATTACH: the partition's index


def parse_toc(listing: str) -> list[TocEntry]:
    """`pg_restore -l` output → entries (comment lines skipped). Each line holds
    `id; catalog oid DESC SCHEMA NAME OWNER`."""
    out = []
    for line in listing.splitlines():
        m = _TOC.match(line)
        if not m:
            continue
        rest = m.group(4)
        desc = next((d for d in ("INDEX ATTACH", "FK CONSTRAINT", "CONSTRAINT", "INDEX")
                     if rest.startswith(d + " ")), rest.split(" ", 1)[0])
        words = rest[len(desc) + 1:].split(" ")
        schema, name = (words[0], " ".join(words[1:-1])) if len(words) >= 3 else ("", "")
        out.append(TocEntry(line, int(m.group(2)), int(m.group(3)), desc, schema, name))
    return out


@dataclass(frozen=True)
class SourceIndex:
    schema: str
    name: str
    table: str
    constraint: str | None  # the constraint it backs (unique, primary key), if any
    kept: bool  # built with the tables (primary key, replica identity, referenced by a FK)


def source_indexes(src: psycopg.Connection[Any]) -> dict[int, SourceIndex]:
    """Every index of the source's own schemas by oid, and whether it is built before the copy."""
    rows = src.execute(
        "SELECT i.indexrelid, n.nspname, ic.relname, t.relname, c.conname,"
        " i.indisprimary OR i.indisreplident OR EXISTS (SELECT 1 FROM pg_constraint f"
        "  WHERE f.contype = 'f' AND f.conindid = i.indexrelid)"
        " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
        " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace"
        " LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p','u','x')"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%'").fetchall()
    return {int(r[0]): SourceIndex(r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}


def _index_of(e: TocEntry, indexes: dict[int, SourceIndex], by_name: dict[tuple[str, str],
              SourceIndex], constraint_index: dict[int, int]) -> SourceIndex | None:
    """The index a TOC entry makes, attaches or comments on (None: not about an index)."""
    if e.desc == "INDEX" and e.catalog == _PG_CLASS:
        return indexes.get(e.oid)
    if e.desc == "CONSTRAINT" and e.catalog == _PG_CONSTRAINT:
        return indexes.get(constraint_index.get(e.oid, 0))
    if e.desc == "INDEX ATTACH":
        return by_name.get((e.schema, e.name))
    if e.desc == "COMMENT" and e.name.startswith(("INDEX ", "CONSTRAINT ")):
        # "INDEX name" or "CONSTRAINT name ON table": a unique key's index is named as it
        return by_name.get((e.schema, e.name.split(" ")[1]))
    return None


def split(entries: list[TocEntry], indexes: dict[int, SourceIndex],
          constraint_index: dict[int, int]
          ) -> tuple[list[TocEntry], list[tuple[TocEntry, SourceIndex]]]:
    """(entries to restore before the copy, deferred entries with their index).
    `constraint_index` maps a pg_constraint oid to the oid of the index behind it."""
    by_name = {(ix.schema, ix.name): ix for ix in indexes.values()}
    now, later = [], []
    for e in entries:
        ix = _index_of(e, indexes, by_name, constraint_index)
        if ix is not None and not ix.kept:
            later.append((e, ix))
        else:
            now.append(e)
    return now, later


Command = tuple[list[str], dict[str, str], str]  # (argv, environment, what), as database.py


def dump_schema_command(src_dsn: str, path: str) -> Command:
    """The source's schema as a custom-format archive at `path`; the password travels in the
    environment (app.pgclient), never in argv."""
    target, env = libpq_target(src_dsn)
    return ([tool("pg_dump"), "--schema-only", "-Fc", "--no-publications", "--no-subscriptions",
             "-f", path, target], env, "pg_dump --schema-only")


def restore_command(dst_dsn: str, archive: str, listing: str, *, jobs: int = 1,
                    options: str = "") -> Command:
    """pg_restore of the entries in `listing` (one TOC line each) from `archive` into the
    target: in one transaction, or `jobs` sessions at a time (with PGOPTIONS `options`)."""
    target, env = libpq_target(dst_dsn)
    if options:
        env["PGOPTIONS"] = options
    return ([tool("pg_restore"), *(["-j", str(jobs)] if jobs > 1 else ["--single-transaction"]),
             "--no-owner", "--no-privileges", "--exit-on-error", "-L", listing, "-d", target,
             archive], env, "pg_restore of the schema")


def _archive(src_dsn: str, folder: str) -> tuple[str, list[TocEntry]]:
    """The source's schema archived in `folder`, and its table of contents."""
    path = f"{folder}/schema.dump"
    argv, env, what = dump_schema_command(src_dsn, path)
    run_tool(argv, what, env)
    return path, parse_toc(run_tool([tool("pg_restore"), "-l", path], "pg_restore -l", env))


def _constraint_index(src: psycopg.Connection[Any]) -> dict[int, int]:
    return {int(a): int(b) for a, b in src.execute(
        "SELECT oid, conindid FROM pg_constraint WHERE conindid <> 0").fetchall()}


def _restore(dst_dsn: str, archive: str, entries: list[TocEntry], what: str, *,
             jobs: int = 1, options: str = "") -> None:
    listing = Path(archive).with_suffix(".list")
    listing.write_text("".join(e.line + "\n" for e in entries))
    argv, env, _ = restore_command(dst_dsn, archive, str(listing), jobs=jobs, options=options)
    run_tool(argv, what, env)


def load_schema(src: psycopg.Connection[Any], src_dsn: str, dst_dsn: str, *,
                defer_indexes: bool = True) -> int:
    """The source's schema into the (empty) target; with `defer_indexes`, without the indexes
    the initial copy does not need. Returns how many entries were deferred."""
    with tempfile.TemporaryDirectory() as d:
        archive, entries = _archive(src_dsn, d)
        now, later = (split(entries, source_indexes(src), _constraint_index(src))
                      if defer_indexes else (entries, []))
        _restore(dst_dsn, archive, now, "loading the schema into the target")
    return len(later)


def _on_target(dst: psycopg.Connection[Any]) -> tuple[set[tuple[str, str]],
                                                       set[tuple[str, str]]]:
    """((schema, name) of every index on the target, of those attached to a parent index)."""
    rows = dst.execute(
        "SELECT n.nspname, c.relname, EXISTS (SELECT 1 FROM pg_inherits h"
        "  WHERE h.inhrelid = c.oid) FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE c.relkind IN ('i', 'I')").fetchall()
    return {(r[0], r[1]) for r in rows}, {(r[0], r[1]) for r in rows if r[2]}


def build_deferred_indexes(src: psycopg.Connection[Any], dst: psycopg.Connection[Any],
                           src_dsn: str, dst_dsn: str, *, jobs: int = 2,
                           memory: str = INDEX_MEMORY) -> int:
    """Build on the target the deferred indexes it does not have yet (a rerun builds only what
    an interrupted run left), `jobs` at a time; returns how many entries it restored."""
    with tempfile.TemporaryDirectory() as d:
        archive, entries = _archive(src_dsn, d)
        indexes, cons = source_indexes(src), _constraint_index(src)
        _, later = split(entries, indexes, cons)
        present, attached = _on_target(dst)
        todo = [e for e, ix in later
                if ((e.schema, e.name) not in attached if e.desc == "INDEX ATTACH"
                    else (ix.schema, ix.name) not in present)]
        if todo:
            _restore(dst_dsn, archive, todo, "building the deferred indexes", jobs=jobs,
                     options=f"-c maintenance_work_mem={memory}")
    return len(todo)


_INDEXES = (
    "SELECT n.nspname, t.relname, ic.relname, i.indisunique,"
    " substring(pg_get_indexdef(i.indexrelid) from ' USING .*$'),"
    " i.indisvalid AND i.indisready"
    " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg_toast%'")


def index_gaps(src: psycopg.Connection[Any], dst: psycopg.Connection[Any]) -> list[str]:
    """The source's indexes the target lacks or holds invalid, matched by table, uniqueness
    and definition (names may differ: a partition's index is named when it is created), as
    `schema.index (missing|invalid)` in the source's names."""
    have: dict[tuple[str, str, bool, str], list[bool]] = {}
    for schema, table, _, unique, definition, ok in dst.execute(_INDEXES).fetchall():
        have.setdefault((schema, table, unique, definition), []).append(bool(ok))
    gaps = []
    for schema, table, name, unique, definition, _ in src.execute(_INDEXES).fetchall():
        found = sorted(have.get((schema, table, unique, definition), []), reverse=True)
        have[(schema, table, unique, definition)] = found
        if not found:
            gaps.append(f"{schema}.{name} (missing)")
        elif not found.pop(0):
            gaps.append(f"{schema}.{name} (invalid)")
    return sorted(gaps)
