"""The lab router's delay line: latency and loss between sites, in user space.

This machine's kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is off), so the router sends
traffic between sites through a TUN device (policy routing: packets arriving on a site bridge
for another site's network go to `delay0`); this process reads each packet, holds it for half
the round trip configured for its (source site, destination site) pair, drops it with the
configured loss, and writes it back into the TUN, from where the kernel routes it on to the
destination bridge. Its settings file is re-read whenever it changes (`slow`, `heal`).

    ip netns exec <router> python -m freehold.deploy.lab.delayline --tun delay0 --config links.json

links.json: {"sites": {"a": "198.18.1.0/24", ...},
             "links": {"a>b": {"delay_ms": 5.0, "loss_pct": 0.0}, ...}}   # one way each
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import json
import os
import random
import struct
from pathlib import Path

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Links:
    """(source site, destination site) -> (one-way delay s, loss fraction), by /24 lookup."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime = 0.0
        self.sites: list[tuple[int, int, str]] = []     # (network int, mask int, site)
        self.table: dict[tuple[str, str], tuple[float, float]] = {}
        self.cache: dict[bytes, str | None] = {}
        self.reload()

    def reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == self.mtime:
            return
        doc = json.loads(self.path.read_text())
        sites = []
        for name, net in doc["sites"].items():
            n = ipaddress.IPv4Network(net)
            sites.append((int(n.network_address), int(n.netmask), name))
        table = {}
        for key, v in doc["links"].items():
            src, dst = key.split(">", 1)
            table[(src, dst)] = (float(v["delay_ms"]) / 1000.0, float(v["loss_pct"]) / 100.0)
        self.sites, self.table, self.cache, self.mtime = sites, table, {}, mtime

    def site_of(self, addr: bytes) -> str | None:
        found = self.cache.get(addr, "")
        if found != "":
            return found
        value = int.from_bytes(addr, "big")
        site = next((name for net, mask, name in self.sites if value & mask == net), None)
        self.cache[addr] = site
        return site

    def lookup(self, packet: bytes) -> tuple[float, float]:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return 0.0, 0.0
        src = self.site_of(packet[12:16])
        dst = self.site_of(packet[16:20])
        return self.table.get((src, dst), (0.0, 0.0)) if src and dst else (0.0, 0.0)


async def run(tun: str, config: Path) -> None:
    fd = open_tun(tun)
    links = Links(config)
    loop = asyncio.get_running_loop()

    def send(packet: bytes) -> None:
        try:  # noqa: SIM105  (per packet: cheaper than contextlib.suppress)
            os.write(fd, packet)
        except OSError:
            pass            # a full queue drops the packet, as a real link would

    def readable() -> None:
        for _ in range(256):
            try:
                packet = os.read(fd, 65535)
            except BlockingIOError:
                return
            delay, loss = links.lookup(packet)
            if loss and random.random() < loss:
                continue
            if delay <= 0:
                send(packet)
            else:
                loop.call_later(delay, send, packet)

    loop.add_reader(fd, readable)
    while True:
        await asyncio.sleep(0.2)
        links.reload()


def main() -> None:
    ap = argparse.ArgumentParser(description="the lab router's delay line")
    ap.add_argument("--tun", required=True)
    ap.add_argument("--config", type=Path, required=True)
    args = ap.parse_args()
    asyncio.run(run(args.tun, args.config))


if __name__ == "__main__":
    main()
