"""What a Redis server's cluster looks like against the layout the spec wants, read once."""

from __future__ import annotations

from pyinfra.api import FactBase


class ClusterState(FactBase[str]):
    """`ok` when the running cluster matches the layout file (the role's script compares
    them without changing anything), else the script's account of what differs."""

    default = str  # what an empty answer means (pyinfra skips process())

    def command(self, script: str, layout: str) -> str:
        return f"python3 {script} check {layout} 2>&1 || true"

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()
