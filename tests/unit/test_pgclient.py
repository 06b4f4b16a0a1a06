"""PostgreSQL client command lines carry no password (it is in the child's environment)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from freehold.app.pgclient import libpq_target

PASSWORD = "s3cr3t p@ss:word'\\"
URL = "postgresql://freehold:s3cr3t%20p%40ss%3Aword%27%5C@10.0.0.5:5432/freehold?sslmode=disable"


def assert_no_password(argv: list[str]) -> None:
    for arg in argv:
        assert PASSWORD not in arg and "s3cr3t" not in arg and "password" not in arg, arg


@pytest.mark.parametrize("dsn", [
    URL,
    "host=10.0.0.5 port=5432 dbname=freehold user=freehold password='s3cr3t p@ss:word\\'\\\\'",
])
def test_password_moves_from_the_dsn_to_pgpassword(dsn: str) -> None:
    target, env = libpq_target(dsn, {"PATH": "/usr/bin"})
    assert_no_password([target])
    assert env == {"PATH": "/usr/bin", "PGPASSWORD": PASSWORD}
    for part in ("host=10.0.0.5", "port=5432", "dbname=freehold", "user=freehold"):
        assert part in target


def test_no_password_leaves_the_environment_as_given() -> None:
    target, env = libpq_target("postgresql://u@h1:5000,h2:5000/db", {"PGPASSWORD": "mine"})
    assert env == {"PGPASSWORD": "mine"} and "host=h1,h2" in target
    assert "PGPASSWORD" not in os.environ or os.environ["PGPASSWORD"] != PASSWORD


def test_migration_tool_commands_carry_no_password(tmp_path: Path) -> None:
    from freehold.deploy.migrate.database import dump_restore_commands
    from freehold.deploy.migrate.dbschema import dump_schema_command, restore_command

    other = URL.replace("10.0.0.5", "10.0.0.6")
    archive = str(tmp_path / "schema.dump")
    calls = [dump_schema_command(URL, archive),
             restore_command(other, archive, str(tmp_path / "l"), jobs=2,
                             options="-c maintenance_work_mem=1GB"),
             *dump_restore_commands(URL, other, str(tmp_path), jobs=2)]
    assert [Path(argv[0]).name for argv, _, _ in calls] == ["pg_dump", "pg_restore", "pg_dump",
                                                              "pg_restore"]
    assert calls[1][1]["PGOPTIONS"] == "-c maintenance_work_mem=1GB"
    for argv, env, _ in calls:
        assert_no_password(argv)
        assert env["PGPASSWORD"] == PASSWORD
        assert any("host=10.0.0.5" in a or "host=10.0.0.6" in a for a in argv)


def test_migrate_database_takes_the_source_from_the_environment() -> None:
    """`freehold migrate database` reads --from from FREEHOLD_MIGRATE_FROM, so an operator's
    source password need not be on the command line either."""
    from typer.testing import CliRunner

    from freehold.deploy.cli import app

    r = CliRunner().invoke(app, ["migrate", "database", "--to", "postgresql://h/db"],
                           env={"FREEHOLD_MIGRATE_FROM": "mysql://u:pw@h/db"})
    assert r.exit_code == 2 and "--from mysql://u:pw@h/db: not a PostgreSQL URL" in r.output
