"""Command lines of the PostgreSQL client tools (psql, pg_dump, pg_restore, pg_basebackup) that
never carry a password: any user on the machine can read a process's arguments (`ps`), while its
environment is readable only by its owner and root. A DSN's password moves to PGPASSWORD in the
child's environment (libpq reads it there); the parent's own environment is left alone.

Used by the local dev stack (app/devstack.py) and the operator's database migration; it sits
beside the app so the dev stack needs nothing of the operator side (the release leaves it out).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from psycopg.conninfo import conninfo_to_dict, make_conninfo


def libpq_target(dsn: str, environ: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """(a connection string for the tool's argv without the password, the environment to run
    the tool with: `environ` (default os.environ) plus PGPASSWORD when the DSN has one).
    Takes URLs (postgresql://user:pw@host:port/db) and key=value strings alike."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = dict(os.environ if environ is None else environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env
