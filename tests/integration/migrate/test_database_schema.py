"""The target's schema while it replicates, between two real local PostgreSQL servers: indexes
built after the initial copy (dbschema), and month partitions the source adds meanwhile
(dbpartitions), including one written to before the tool saw it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from freehold.app.devstack import Postgres
from freehold.deploy.cli import app
from freehold.deploy.migrate import database, dbschema

from .test_database_cutover import seeded_pair

pytestmark = pytest.mark.integration
run = CliRunner().invoke


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Postgres, Postgres]]:
    with seeded_pair(tmp_path, accounts=300) as both:
        yield both


def one(dsn: str, q: str, *args: Any) -> Any:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(q, args or None).fetchone()[0]


def indexes(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as c:
        return {r[0] for r in c.execute(
            "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON "
            "c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace").fetchall()}


def test_indexes_wait_until_the_copy_is_in(pair) -> None:  # noqa: ANN001
    src, dst = pair
    deferred = database.copy_schema(src.dsn, dst.dsn)
    have = indexes(dst.dsn)
    # primary keys (replica identity), foreign keys and the tables are there, not the rest
    assert {"accounts_pkey", "posts_pkey", "posts_2026_12_pkey", "follows_pkey"} <= have
    assert not {"posts_author", "follows_followee", "accounts_username_key",
                "oauth_apps_client_id_key", "upvotes_post"} & have, have
    assert one(dst.dsn, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == one(
        src.dsn, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
    with psycopg.connect(src.dsn) as s, psycopg.connect(dst.dsn) as d:
        gaps = dbschema.index_gaps(s, d)
        assert deferred >= len(gaps) > 10 and "public.posts_author (missing)" in gaps, gaps
        built = dbschema.build_deferred_indexes(s, d, src.dsn, dst.dsn, jobs=2)
        assert built == deferred and dbschema.index_gaps(s, d) == []
        assert dbschema.build_deferred_indexes(s, d, src.dsn, dst.dsn) == 0  # rerun: nothing
    assert indexes(dst.dsn) == indexes(src.dsn)
    # an index left invalid (as a failed CREATE INDEX CONCURRENTLY leaves it) is a gap too
    one(dst.dsn, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
        "'follows_followee'::regclass RETURNING 1")
    with psycopg.connect(src.dsn) as s, psycopg.connect(dst.dsn) as d:
        assert dbschema.index_gaps(s, d) == ["public.follows_followee (invalid)"]


def wait_for(dsn: str, q: str, want: int, seconds: float = 60) -> int:
    end = time.monotonic() + seconds
    got = one(dsn, q)
    while got != want and time.monotonic() < end:  # bounded: seconds
        time.sleep(0.2)
        got = one(dsn, q)
    return int(got)


NEW_MONTH = ("CREATE TABLE {0} PARTITION OF posts FOR VALUES FROM (freehold_id_floor('{1}'))"
             " TO (freehold_id_floor(('{1}'::timestamptz + interval '1 month')))")
ROWS = ("INSERT INTO posts (id, author_id, body) SELECT freehold_id_floor('{0}') + g, "
        "(SELECT min(id) FROM accounts), 'new month ' || g FROM generate_series(1, {1}) g")


def test_month_partitions_added_during_replication_reach_the_target(pair) -> None:  # noqa: ANN001
    src, dst = pair
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--watch", "120",
                  "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["consistent"], r.output
    # the app's maintenance adds a month ahead; the tool's next pass creates it on the target
    with psycopg.connect(src.dsn, autocommit=True) as c:
        c.execute(NEW_MONTH.format("posts_2031_01", "2031-01-01 UTC"))
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--watch", "30"])
    assert r.exit_code == 0 and "created partition public.posts_2031_01" in r.stderr, r.output
    with psycopg.connect(src.dsn, autocommit=True) as c:  # then the month's posts come
        c.execute(ROWS.format("2031-01-01 UTC", 40))
    assert wait_for(dst.dsn, "SELECT count(*) FROM ONLY posts_2031_01", 40) == 40
    # a month created and written to before the tool ran again: its rows reach the target's
    # default partition; the cut-over moves them (with their tags: no cascade) and verifies
    with psycopg.connect(src.dsn, autocommit=True) as c:
        c.execute(NEW_MONTH.format("posts_2031_02", "2031-02-01 UTC"))
        c.execute(ROWS.format("2031-02-01 UTC", 25))
        c.execute("INSERT INTO post_tags (tag, post_id) SELECT 'feb', id FROM posts_2031_02")
    assert wait_for(dst.dsn, "SELECT count(*) FROM ONLY posts_default", 25) == 25
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--cutover",
                  "--timeout", "60", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["tables_differing"] == [], res["tables"]
    by = {t["table"]: t["rows_target"] for t in res["tables"]}
    assert by["public.posts_2031_01"] == 40 and by["public.posts_2031_02"] == 25, by
    assert by["public.posts_default"] == 0
    assert one(dst.dsn, "SELECT count(*) FROM post_tags WHERE tag = 'feb'") == 25


NEW_TABLE = """
CREATE TABLE "book marks" (id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id), note text,
  created timestamptz NOT NULL DEFAULT now());
CREATE INDEX book_marks_account ON "book marks" (account_id);
INSERT INTO "book marks" (account_id, note) SELECT id, 'early ' || id FROM accounts
  ORDER BY id LIMIT 50;
"""


def test_a_table_created_during_replication_is_created_on_the_target_and_copied(
        pair) -> None:  # noqa: ANN001
    src, dst = pair
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--watch", "120",
                  "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["consistent"], r.output
    # a new feature's table, written to before the tool runs again (its name needs quoting)
    with psycopg.connect(src.dsn, autocommit=True) as c:
        c.execute(NEW_TABLE)
    with psycopg.connect(src.dsn) as s, psycopg.connect(dst.dsn) as d:
        assert any("book marks" in g for g in database.replication_gaps(s, d))
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--watch", "60"])
    assert r.exit_code == 0, r.output
    assert 'created table public.book marks on the target' in r.stderr, r.stderr
    assert "subscription refreshed" in r.stderr, r.stderr
    assert one(dst.dsn, 'SELECT count(*) FROM "book marks"') == 50  # copied before it returned
    assert "book_marks_account" in indexes(dst.dsn)  # its index came with it
    with psycopg.connect(src.dsn, autocommit=True) as c:  # then it streams like the others
        c.execute("""INSERT INTO "book marks" (account_id, note) SELECT id, 'late' """
                  "FROM accounts ORDER BY id DESC LIMIT 7")
    assert wait_for(dst.dsn, 'SELECT count(*) FROM "book marks"', 57) == 57
    with psycopg.connect(src.dsn) as s, psycopg.connect(dst.dsn) as d:
        assert database.replication_gaps(s, d) == []
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--cutover",
                  "--timeout", "60", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["tables_differing"] == [], res["tables"]
    assert {t["table"]: t["rows_target"] for t in res["tables"]}["public.book marks"] == 57
    seq = """SELECT last_value FROM "book marks_id_seq\""""
    assert one(dst.dsn, seq) == one(src.dsn, seq)  # the cut-over set the sequence too
