"""Facts every role may read (pyinfra FactBase: a command and what its output means)."""

from __future__ import annotations

from pyinfra.api import FactBase


class InContainer(FactBase[bool]):
    """True on a container (the lab's systemd-nspawn servers)."""

    default = bool  # what an empty answer means (pyinfra skips process())

    def command(self) -> str:
        return "systemd-detect-virt --container --quiet && echo yes || echo no"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "yes"


class UnitCommandLine(FactBase[str]):
    """The command line of a systemd unit's main process ('' when it does not run)."""

    default = str  # what an empty answer means (pyinfra skips process())

    def command(self, unit: str) -> str:
        return (f"pid=$(systemctl show -p MainPID --value {unit} 2>/dev/null); "
                f"[ -n \"$pid\" ] && [ \"$pid\" != 0 ] && tr '\\0' ' ' < /proc/$pid/cmdline "
                "|| true")

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()
