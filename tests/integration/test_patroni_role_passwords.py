"""A rotated Patroni secret reaches the database role (roles.postgres.config.roles_sql, run
on the leader before any member's config changes), on a real PostgreSQL this test starts:
Patroni creates `postgres`, `replicator` and `rewind` once at bootstrap and never changes their
passwords, so the deploy's SQL must, or pg_rewind and a replica's next replication connection
fail with 'password authentication failed'."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from freehold.app.devstack import Postgres, pg_bin
from freehold.app.pgclient import libpq_target
from freehold.deploy.secrets import Secrets
from freehold.roles.postgres.config import PATRONI_ROLES, roles_sql

pytestmark = pytest.mark.integration


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Postgres]:
    # a server of its own: the test creates and alters cluster-wide roles
    pg = Postgres(tmp_path / "pg").start()
    try:
        yield pg
    finally:
        pg.stop()


def _psql(pg: Postgres, user: str, password: str, sql: str | None = None,
          file: Path | None = None, database: str = "postgres") -> subprocess.CompletedProcess[str]:
    target, env = libpq_target(f"postgresql://{user}:{password}@127.0.0.1:{pg.port}/{database}")
    args = [str(pg_bin() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target]
    args += ["-f", str(file)] if file else ["-c", sql or "SELECT 1"]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)


def _secrets(tag: str, app_password: str) -> Secrets:
    cluster = {key: f"{tag}-{key}-it's" for _, key in PATRONI_ROLES}
    return Secrets(cluster={**cluster, "postgres_app": app_password})


def _can_log_in(pg: Postgres, user: str, password: str) -> bool:
    return _psql(pg, user, password).returncode == 0


def test_rotated_secrets_change_patroni_roles_passwords(server: Postgres, tmp_path: Path) -> None:
    first = _secrets("first", server.password)
    # as Patroni's bootstrap leaves them: the roles with the first secrets
    for role, key in PATRONI_ROLES:
        quoted = first[key].replace("'", "''")
        r = _psql(server, server.user, server.password,
                  f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'")
        assert r.returncode == 0, r.stderr
    second = _secrets("second", server.password)
    sql = tmp_path / "app.sql"
    sql.write_text(roles_sql(second))
    r = _psql(server, server.user, server.password, file=sql)
    assert r.returncode == 0, r.stderr
    for role, key in PATRONI_ROLES:
        assert _can_log_in(server, role, second[key]), f"{role}: the rotated password refused"
        assert not _can_log_in(server, role, first[key]), f"{role}: the old password still works"
    # the same SQL again changes nothing it can see, and fails nowhere (a second deploy)
    r = _psql(server, server.user, server.password, file=sql)
    assert r.returncode == 0, r.stderr
    assert all(_can_log_in(server, role, second[key]) for role, key in PATRONI_ROLES)
    log = (server.root / "postgres.log").read_text(errors="replace")
    assert "second-postgres_rewind" not in log, "a password reached the server's log"


def test_missing_patroni_role_is_passed_over(server: Postgres, tmp_path: Path) -> None:
    """A cluster without pg_rewind's role (use_pg_rewind off when it was made) still deploys."""
    sql = tmp_path / "app.sql"
    sql.write_text(roles_sql(_secrets("only", server.password)))
    r = _psql(server, server.user, server.password, file=sql)
    assert r.returncode == 0, r.stderr
    roles = _psql(server, server.user, server.password,
                  "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN "
                  "('replicator', 'rewind')")
    assert "rewind" not in roles.stdout
