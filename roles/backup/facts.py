"""What a PostgreSQL or backup server says about its backups, read once."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pyinfra.api import FactBase


class PublicKeyOf(FactBase[str]):
    """The public half ('<type> <base64>') of a private key file ('' when there is none)."""

    default = str  # what an empty answer means (pyinfra skips process())

    def command(self, path: str) -> str:
        return f"ssh-keygen -y -f {path} 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return " ".join(" ".join(output).split()[:2])


class PatroniDynamicConfig(FactBase[dict[str, Any]]):
    """Patroni's dynamic configuration (`patronictl show-config`), {} when it cannot say."""

    default = dict  # what an empty answer means (pyinfra skips process())

    def command(self, patronictl: str) -> str:
        return f"{patronictl} show-config 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, Any]:
        try:
            doc = yaml.safe_load("\n".join(output)) or {}
        except yaml.YAMLError:
            return {}
        return doc if isinstance(doc, dict) else {}


class BackupInfo(FactBase[list[dict[str, Any]]]):
    """`pgbackrest info` of a stanza as JSON ([] when there is no answer)."""

    default = list  # what an empty answer means (pyinfra skips process())

    def command(self, as_user: str, stanza: str) -> str:
        return f"{as_user} pgbackrest --stanza={stanza} --output=json info 2>/dev/null || echo '[]'"

    def process(self, output: list[str]) -> list[dict[str, Any]]:
        try:
            doc = json.loads("\n".join(output) or "[]")
        except json.JSONDecodeError:
            return []
        return doc if isinstance(doc, list) else []
