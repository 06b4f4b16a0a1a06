"""Commands on the lab machine itself: prerequisites, `ip`/`nft`/`tc` calls, route checks."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from freehold.deploy.lab.errors import LabError

# tool -> Debian package that ships it
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "nft": "nftables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}


def check_prerequisites(tools: Sequence[str] = tuple(TOOLS)) -> None:
    """Raise LabError (one line naming the apt-get install) when not root or a tool is missing."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, nftables): run it with sudo")
    missing = sorted({TOOLS[t] for t in tools if shutil.which(t) is None})
    if missing:
        raise LabError(f"missing packages for the lab: run `apt-get install {' '.join(missing)}`")


def sh(args: Sequence[str], *, check: bool = True, input: str | None = None,
       timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run one command (no shell); on failure raise LabError with the command and its stderr."""
    proc = subprocess.run(list(args), input=input, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"`{' '.join(args)}` failed: {msg[-1] if msg else proc.returncode}")
    return proc


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return sh(["ip", *(["-n", netns] if netns else []), *args], check=check)


def nft(script: str, netns: str | None = None) -> None:
    """Load an nftables script (atomically), in a namespace when given."""
    cmd = ["nft", "-f", "-"]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    sh(cmd, input=script)


def netns_list() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """The machine's IPv4 routes (main table) as (network, device)."""
    out = sh(["ip", "-j", "-4", "route", "show", "table", "main"]).stdout or "[]"
    routes = []
    for r in json.loads(out):
        dst = r.get("dst", "")
        if dst == "default":
            dst = "0.0.0.0/0"
        try:
            net = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        routes.append((net, r.get("dev", "")))
    return routes


def overlapping_routes(networks: Sequence[ipaddress.IPv4Network], own_dev: str
                       ) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Network, str]]:
    """(ours, theirs, dev) for every non-default host route overlapping one of `networks`."""
    clashes = []
    for net, dev in host_routes():
        if net.prefixlen == 0 or dev == own_dev:
            continue
        clashes.extend((mine, net, dev) for mine in networks if mine.overlaps(net))
    return clashes


def ip_forwarding() -> bool:
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        return f.read().strip() == "1"


def enable_ip_forwarding() -> None:
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
NEIGH = Path("/proc/sys/net/ipv4/neigh/default")


def neighbour_limits(servers: int) -> dict[str, int]:
    """The ARP table sizes a lab of `servers` needs. The table is one for the whole machine
    (every namespace's entries count against the host's gc_thresh3, 1024 by default): each
    server learns its gateway and the servers of its site it reaches directly (its WireGuard
    peers there), the router every server. 128 per server covers a 300-server lab of 4 sites
    (~75 same-site neighbours each) with room; past gc_thresh3 the kernel drops packets
    ("neighbour table overflow") and the lab's servers become unreachable."""
    hard = max(1024, 128 * servers)
    return {"gc_thresh1": hard // 8, "gc_thresh2": hard * 3 // 4, "gc_thresh3": hard}


def raise_neighbour_limits(servers: int) -> dict[str, int]:
    """Raise (never lower) the machine's ARP table limits for a lab of `servers`; returns the
    limits in force afterwards."""
    out = {}
    for key, want in neighbour_limits(servers).items():
        path = NEIGH / key
        have = int(path.read_text())
        if have < want:
            path.write_text(f"{want}\n")
        out[key] = max(have, want)
    return out


def raise_inotify_limit(servers: int) -> None:
    """Each server's systemd, journald, logind and dbus take inotify instances, all counted
    against root: the default 128 stops at ~25 servers. Raised (never lowered) machine-wide."""
    want = max(1024, 16 * servers)
    if int(INOTIFY_INSTANCES.read_text()) < want:
        INOTIFY_INSTANCES.write_text(f"{want}\n")
