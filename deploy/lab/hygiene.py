"""What the lab may leave on the machine: a snapshot to compare before `up` and after `down`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import psutil

from freehold.deploy.lab.container import mounted_points
from freehold.deploy.lab.host import netns_list, sh
from freehold.deploy.lab.layout import LabPlan


@dataclass(frozen=True)
class Snapshot:
    netns: frozenset[str]
    links: frozenset[str]
    mounts: frozenset[str]
    nft_tables: frozenset[str]
    processes: frozenset[tuple[int, str]]
    routes: frozenset[str]

    def lab_items(self, plan: LabPlan) -> dict[str, set]:
        """Everything in the snapshot that belongs to the lab (by name, path or command)."""
        state = str(plan.state_dir)
        markers = (plan.prefix, state, f"/{plan.name}/")
        return {
            "netns": {n for n in self.netns if n.startswith(plan.prefix)},
            "links": {n for n in self.links if n.startswith(plan.prefix)},
            "mounts": {m for m in self.mounts if m.startswith(state) or plan.prefix in m},
            "nft_tables": {t for t in self.nft_tables if t.split()[-1] == plan.nft_table},
            "processes": {p for p in self.processes if any(m in p[1] for m in markers)},
            "routes": {r for r in self.routes if plan.host_link in r},
        }


def snapshot() -> Snapshot:
    links = {link["ifname"] for link in json.loads(sh(["ip", "-j", "link"]).stdout or "[]")}
    tables = {line.removeprefix("table ").strip()
              for line in sh(["nft", "list", "tables"]).stdout.splitlines() if line.strip()}
    procs = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd:
            procs.add((p.info["pid"], cmd))
    routes = set(sh(["ip", "-4", "route", "show"]).stdout.splitlines())
    return Snapshot(frozenset(netns_list()), frozenset(links), frozenset(mounted_points()),
                    frozenset(tables), frozenset(procs), frozenset(routes))
