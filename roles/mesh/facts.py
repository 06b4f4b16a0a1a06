"""Which WireGuard a server can run: read only (loading the module is an operation)."""

from __future__ import annotations

from pyinfra.api import FactBase


class KernelWireguard(FactBase[bool]):
    """True when the kernel has WireGuard loaded or installed as a module (`modinfo` reads the
    module tree, it loads nothing); False in containers and kernels without it (wireguard-go)."""

    default = bool  # what an empty answer means (pyinfra skips process())

    def command(self) -> str:
        return ("if [ -e /sys/module/wireguard ] || modinfo wireguard >/dev/null 2>&1; "
                "then echo kernel; else echo userspace; fi")

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "kernel"
