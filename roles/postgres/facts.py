"""What a PostgreSQL server says about itself, read once (no waiting: that is an operation)."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

from freehold.roles.ports import PATRONI_REST_PORT


class PatroniRole(FactBase[str]):
    """`leader` when the local Patroni runs PostgreSQL as the leader holding the lock (/primary
    answers 200), `replica` when /replica does, else `none`. (/health alone is not enough: a
    member that has just run initdb serves before it takes the leader key.)"""

    @staticmethod
    def default() -> str:  # nothing printed: no answer
        return "none"

    def command(self, mesh_address: str) -> str:
        base = f"http://{mesh_address}:{PATRONI_REST_PORT}"
        return (f"if curl -fs --max-time 3 -o /dev/null {base}/primary; then echo leader; "
                f"elif curl -fs --max-time 3 -o /dev/null {base}/replica; then echo replica; "
                "else echo none; fi")

    def process(self, output: list[str]) -> str:
        value = output[-1].strip() if output else ""
        return value if value in ("leader", "replica") else "none"


def _psql_count(sql: str) -> str:
    """A `SELECT count(*)` asked of the local PostgreSQL as the postgres OS user."""
    return f"runuser -u postgres -- psql -XtAq -c \"{sql}\""


def _is_one(output: list[str]) -> bool:
    return bool(output) and output[-1].strip() == "1"


class DatabaseExists(FactBase[bool]):
    """Whether the local PostgreSQL has the database (asked as the postgres OS user)."""

    default = bool  # what an empty answer means (pyinfra skips process())

    def command(self, database: str) -> str:
        return _psql_count(f"SELECT count(*) FROM pg_database WHERE datname = '{database}'")

    def process(self, output: list[str]) -> bool:
        return _is_one(output)


class RoleExists(FactBase[bool]):
    """Whether the local PostgreSQL has the login role (asked as the postgres OS user)."""

    default = bool  # what an empty answer means (pyinfra skips process())

    def command(self, role: str) -> str:
        return _psql_count(f"SELECT count(*) FROM pg_roles WHERE rolname = '{role}'")

    def process(self, output: list[str]) -> bool:
        return _is_one(output)


class PatroniDynamic(FactBase[dict[str, Any]]):
    """The cluster's dynamic configuration as Patroni holds it in etcd (GET /config: no
    authentication for reads); {} when Patroni does not answer."""

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def command(self, mesh_address: str) -> str:
        return (f"curl -fs --max-time 3 http://{mesh_address}:{PATRONI_REST_PORT}/config "
                "|| true")

    def process(self, output: list[str]) -> dict[str, Any]:
        try:
            doc = json.loads("\n".join(output))
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}
