"""Database move between two real local PostgreSQL servers: logical replication, cutover."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from freehold.app.devstack import Postgres
from freehold.deploy.cli import app
from freehold.deploy.migrate import database

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE accounts (id bigserial PRIMARY KEY, handle text UNIQUE NOT NULL,
                       created timestamptz NOT NULL DEFAULT now());
CREATE TABLE posts (id bigserial PRIMARY KEY, author bigint REFERENCES accounts(id),
                    body text NOT NULL, tags text[]);
INSERT INTO accounts (handle) SELECT 'user' || g FROM generate_series(1, 2000) g;
INSERT INTO posts (author, body, tags)
  SELECT 1 + g % 2000, md5(g::text), ARRAY['t' || (g % 7)] FROM generate_series(1, 20000) g;
"""


@pytest.fixture(scope="module")
def two_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Postgres, Postgres]]:
    src = Postgres(Path(tmp_path_factory.mktemp("pgsrc"))).start()
    try:
        dst = Postgres(Path(tmp_path_factory.mktemp("pgdst"))).start()
        try:
            yield src, dst
        finally:
            dst.stop()
    finally:
        src.stop()


def test_logical_replication_then_cutover(two_pg, tmp_path: Path) -> None:  # noqa: ANN001
    src, dst = two_pg
    with psycopg.connect(src.dsn, autocommit=True) as c:
        c.execute(SCHEMA)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: freehold-migration-manifest\n")
    run = CliRunner().invoke
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--json",
                  "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["mode"].startswith("replicating")
    # writes keep arriving at the source while it replicates
    with psycopg.connect(src.dsn, autocommit=True) as c:
        c.execute("INSERT INTO posts (author, body) SELECT 1, 'late' || g "
                  "FROM generate_series(1, 500) g")
        c.execute("UPDATE accounts SET handle = handle || '_x' WHERE id <= 10")
        c.execute("DELETE FROM posts WHERE id <= 5")
    # rerun is idempotent; it builds the deferred indexes once every table is copied
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--json",
                  "--watch", "120"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["consistent"], r.stdout
    # a deferred index missing on the target: the cut-over refuses in one line, stops nothing
    with psycopg.connect(dst.dsn, autocommit=True) as c:
        c.execute("ALTER TABLE accounts DROP CONSTRAINT accounts_handle_key")
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--cutover",
                  "--timeout", "120"])
    assert r.exit_code != 0 and "nothing stopped" in r.stderr, r.output
    assert "public.accounts_handle_key (missing)" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    with psycopg.connect(src.dsn) as c:  # the refusal left the source writable
        assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--json",
                  "--watch", "120"])
    assert r.exit_code == 0 and json.loads(r.stdout)["indexes_missing"] == 0, r.output
    r = run(app, ["migrate", "database", "--from", src.dsn, "--to", dst.dsn, "--cutover",
                  "--timeout", "120", "--json", "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert {t["table"]: t["rows_target"] for t in res["tables"]} == {
        "public.accounts": 2000, "public.posts": 20495}
    assert all(t["equal"] and t["chunks_differing"] == 0 for t in res["tables"])
    assert res["rows_verified"] == 22495 and res["tables_differing"] == []
    assert res["sequences_reset"] == 2
    # independent check of the data, the sequences and the stopped writes
    q = "SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM posts p"
    with psycopg.connect(src.dsn) as a, psycopg.connect(dst.dsn, autocommit=True) as b:
        assert a.execute(q).fetchone() == b.execute(q).fetchone()
        new_id = b.execute("INSERT INTO posts (author, body) VALUES (1, 'new') "
                           "RETURNING id").fetchone()[0]
        assert new_id == 20501
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            a.execute("INSERT INTO accounts (handle) VALUES ('blocked')")
    states = {s["step"]: s["state"] for s in json.loads(
        run(app, ["migrate", "status", str(manifest), "--json"]).stdout)}
    assert states["database-cutover"] == "done"


def test_dump_restore_and_unreachable(two_pg, tmp_path: Path) -> None:  # noqa: ANN001
    src, dst = two_pg
    with psycopg.connect(src.dsn_for("postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE dumpsrc")
        c.execute("ALTER DATABASE dumpsrc SET default_transaction_read_only = off")
    with psycopg.connect(dst.dsn_for("postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE dumpdst")
    with psycopg.connect(src.dsn_for("dumpsrc"), autocommit=True) as c:
        c.execute(SCHEMA)
    run = CliRunner().invoke
    t0 = time.monotonic()
    r = run(app, ["migrate", "database", "--from", src.dsn_for("dumpsrc"), "--to",
                  dst.dsn_for("dumpdst"), "--dump", "--jobs", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["mode"] == "dump-restore"
    assert time.monotonic() - t0 < 300
    q = "SELECT count(*), md5(string_agg(p::text, ',' ORDER BY id)) FROM posts p"
    with psycopg.connect(src.dsn_for("dumpsrc")) as a, psycopg.connect(
            dst.dsn_for("dumpdst")) as b:
        assert a.execute(q).fetchone() == b.execute(q).fetchone()
    r = run(app, ["migrate", "database", "--from", "postgresql://x:y@127.0.0.1:9/db",
                  "--to", dst.dsn])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    r = run(app, ["migrate", "database", "--from",
                  src.dsn.replace(":freehold@", ":wrong@"), "--to", dst.dsn])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output


def test_client_tools_get_the_password_from_the_environment(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A real schema copy and dump/restore on a server that checks passwords (scram-sha-256):
    every child process's argv is recorded as it starts, and none holds the password."""
    import subprocess

    password = secrets.token_hex(12)
    pg = Postgres(tmp_path / "pg", password=password).start()
    try:
        for db in ("pwsrc", "pwschema", "pwdump"):
            pg.psql(f"CREATE DATABASE {db}", "postgres")
        pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text);"
                "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g", "pwsrc")
        started: list[list[str]] = []
        real_run = subprocess.run

        def recording_run(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
            started.append([str(a) for a in cmd])
            return real_run(cmd, *args, **kwargs)

        monkeypatch.setattr(subprocess, "run", recording_run)
        database.copy_schema(pg.dsn_for("pwsrc"), pg.dsn_for("pwschema"))
        database.dump_restore(pg.dsn_for("pwsrc"), pg.dsn_for("pwdump"), jobs=2)
        counts = [pg.psql("SELECT count(*) FROM t", db) for db in ("pwschema", "pwdump")]
    finally:
        pg.stop()
    assert counts == ["0", "500"]          # the schema alone, then schema and rows
    tools = [Path(argv[0]).name for argv in started]
    assert {"pg_dump", "pg_restore"} <= set(tools), tools
    for argv in started:
        assert not any(password in arg for arg in argv), argv
