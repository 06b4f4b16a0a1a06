"""Cut-over of the app's database between two real local PostgreSQL servers, under steady writes,
and its faults: a target row changed behind replication's back, a target that stops catching up
(interrupted cut-over, then rerun), a source that cannot replicate logically."""

from __future__ import annotations

import contextlib
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
from freehold.deploy.migrate import MigrateError, database
from freehold.deploy.migrate.writeprobe import WriteProbe

pytestmark = pytest.mark.integration
run = CliRunner().invoke


def seeded(pg: Postgres, accounts: int = 600) -> None:
    """The app's schema and its seeder's data (partitioned posts, follows, upvotes, tags)."""
    from freehold.app.db import migrate
    from freehold.deploy.loadtest.seed import run_app_seed

    migrate(pg.dsn)
    run_app_seed(pg.dsn, accounts)


@contextlib.contextmanager
def seeded_pair(tmp_path: Path, accounts: int = 600) -> Iterator[tuple[Postgres, Postgres]]:
    """A seeded source and an empty target, each a PostgreSQL server of its own, stopped after."""
    src = Postgres(tmp_path / "src").start()
    try:
        dst = Postgres(tmp_path / "dst").start()
        try:
            seeded(src, accounts)
            yield src, dst
        finally:
            dst.stop()
    finally:
        src.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Postgres, Postgres]]:
    with seeded_pair(tmp_path) as both:
        yield both


def replicate(src: Postgres, dst: Postgres) -> dict[str, Any]:
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--watch", "120",
                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["consistent"], out
    return out


def author(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        return int(c.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()[0])


def rows(dsn: str, q: str) -> Any:
    with psycopg.connect(dsn) as c:
        return c.execute(q).fetchall()


def test_cutover_under_steady_writes_loses_no_acknowledged_write(pair) -> None:  # noqa: ANN001
    src, dst = pair
    first = replicate(src, dst)
    assert first["tables_ready"] == first["tables"] > 10
    probe = WriteProbe(src.dsn, dst.dsn, author(src.dsn), rate=50).start()
    try:
        time.sleep(2)  # writes stream to the target while the app uses the source
        res = database.cutover(src.dsn, dst.dsn, timeout=60, rows_per_chunk=2000,
                               on_ready=probe.switch_to_target)
        time.sleep(1.5)  # and land on the target afterwards
    finally:
        probe.stop()
    s = probe.summary()
    assert s["acknowledged_on_source"] > 20 and s["acknowledged_on_target"] > 20, s
    assert s["lost"] == 0, s
    assert 0 < s["outage_s"] < 30, s
    assert res["tables_differing"] == [], res["tables"]
    posts = [t for t in res["tables"] if t["table"].startswith("public.posts_")]
    assert sum(t["chunks"] for t in posts) > 3  # several key ranges, all accounted for
    # every row of the frozen source was compared: its counts, read independently
    n_src = rows(src.dsn, "SELECT (SELECT count(*) FROM follows), (SELECT count(*) FROM posts)")
    by = {t["table"]: t["rows_source"] for t in res["tables"]}
    assert (by["public.follows"], sum(t["rows_source"] for t in posts)) == n_src[0]
    # the source stays frozen and intact; the target took the writes after the snapshot
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        rows(src.dsn, "INSERT INTO tags (tag) VALUES ('late') RETURNING tag")
    n_dst = rows(dst.dsn, "SELECT count(*) FROM posts")[0][0]
    assert n_dst == n_src[0][1] + s["acknowledged_on_target"]


def test_a_row_changed_on_the_target_is_reported(pair) -> None:  # noqa: ANN001
    src, dst = pair
    replicate(src, dst)
    with psycopg.connect(dst.dsn, autocommit=True) as c:  # behind replication's back
        c.execute("UPDATE follows SET created_at = created_at - interval '1 day' WHERE "
                  "(follower_id, followee_id) = (SELECT follower_id, followee_id FROM follows "
                  "ORDER BY 1, 2 LIMIT 1 OFFSET 5000)")
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--cutover",
                  "--timeout", "60"])
    assert r.exit_code != 0, r.output
    err = r.stderr.strip().splitlines()  # the verification's progress bar, then the error
    assert err[-1].startswith("error: verification: 1 table(s) differ (public.follows)"), err
    assert "--rollback" in err[-1] and sum(e.startswith("error:") for e in err) == 1, err
    assert "contents differ" in r.stdout and "1 table(s) differ" in r.stdout, r.stdout
    assert "write outage (source frozen → target ready)" in r.stdout, r.stdout
    # rolling back lets the source take writes again
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--rollback"])
    assert r.exit_code == 0, r.output
    rows(src.dsn, "INSERT INTO tags (tag) VALUES ('after-rollback') RETURNING tag")


def test_interrupted_cutover_then_rerun_picks_up(pair) -> None:  # noqa: ANN001
    src, dst = pair
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--watch", "120"])
    assert r.exit_code == 0, r.output
    assert "first consistent copy" in r.stdout and "tables ready" in r.stderr, r.output
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--json"])
    assert r.exit_code == 0 and "already there" in json.loads(r.stdout)["mode"], r.output
    probe = WriteProbe(src.dsn, dst.dsn, author(src.dsn), rate=50).start()
    try:
        time.sleep(1)
        with psycopg.connect(dst.dsn, autocommit=True) as c:  # the target stops applying
            c.execute(f"ALTER SUBSCRIPTION {database.NAME} DISABLE")
        time.sleep(1)
        with pytest.raises(MigrateError, match="did not catch up"):
            database.cutover(src.dsn, dst.dsn, timeout=2)
        with psycopg.connect(dst.dsn, autocommit=True) as c:
            c.execute(f"ALTER SUBSCRIPTION {database.NAME} ENABLE")
        r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--cutover",
                      "--timeout", "60", "--json"])
        assert r.exit_code == 0, r.output
        probe.switch_to_target()
        time.sleep(1)
    finally:
        probe.stop()
    res = json.loads(r.stdout)
    assert res["tables_differing"] == [] and res["rows_verified"] > 10_000, res
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--cutover"])
    assert r.exit_code != 0 and "already handed over" in r.stderr, r.output
    s = probe.summary()
    assert s["acknowledged_on_source"] > 20 and s["lost"] == 0, s


def test_source_without_logical_wal_is_one_line(tmp_path: Path) -> None:
    src = Postgres(tmp_path / "src", extra_conf={"wal_level": "replica"}).start()
    try:
        dst = Postgres(tmp_path / "dst").start()
        try:
            r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn])
            assert r.exit_code != 0
            assert "wal_level is replica" in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
            r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn,
                          "--cutover"])
            assert r.exit_code != 0 and "no subscription" in r.stderr, r.output
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        finally:
            dst.stop()
    finally:
        src.stop()
