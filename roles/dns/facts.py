"""What a DNS server holds, read once."""

from __future__ import annotations

from pyinfra.api import FactBase


class FileText(FactBase[str]):
    """The first line of a small file ('' when it does not exist)."""

    default = str  # what an empty answer means (pyinfra skips process())

    def command(self, path: str) -> str:
        return f"head -n 1 {path} 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else ""
