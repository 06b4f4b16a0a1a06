"""What a load balancer's host allows and where its addresses are, read once."""

from __future__ import annotations

from pyinfra.api import FactBase


class OpenFilesLimit(FactBase[int | None]):
    """The open-files limit of PID 1 (containers cap it below the host's); None if unread."""

    def command(self) -> str:
        return "awk '/open files/ {print $5}' /proc/1/limits"

    def process(self, output: list[str]) -> int | None:
        text = output[-1].strip() if output else ""
        return int(text) if text.isdigit() else None


class InterfaceOf(FactBase[str]):
    """The network interface holding an IPv4 address ('' when none does)."""

    default = str  # what an empty answer means (pyinfra skips process())

    def command(self, address: str) -> str:
        return f"ip -o -4 addr show | awk '$4 ~ /^{address}\\// {{print $2; exit}}'"

    def process(self, output: list[str]) -> str:
        return output[-1].strip().split("@")[0] if output else ""
