#!/usr/bin/env python3
"""Build or check the Redis Cluster described by a layout file (runs on one Redis server).

    python3 redis_cluster.py check LAYOUT.json   # prints "ok" or one problem per line, exit 0
    python3 redis_cluster.py apply LAYOUT.json   # creates the cluster / attaches replicas

Uploaded by roles/redis; stdlib only (the servers have python3 and redis-cli). The password is
read from /etc/redis/freehold-auth.conf and handed to redis-cli in REDISCLI_AUTH, never argv.
A shard is right when exactly one of its nodes is a master with slots, every other node of
the shard replicates it, and the master is the layout's. After a failover the old master comes
back as a replica, and the masters drift: on the lab two of three ended in one site, whose loss
then took the cluster's majority of masters and its writes for as long as the site was down
(~100 s, the failover drills of 2026-12-07). `apply` gives the master role back to the layout's
node with a graceful CLUSTER FAILOVER (the replica takes over once it has every write of its
master: nothing acknowledged is lost) whenever that node is healthy and replicates the shard.
A node is `{name, address, port}` (port: the layout's `port` when absent); a server may carry
several nodes on several ports, so nodes are told apart by address:port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

# the tests point it at a file of their own
AUTH_FILE = os.environ.get("FREEHOLD_REDIS_AUTH_FILE", "/etc/redis/freehold-auth.conf")


def password() -> str:
    with open(AUTH_FILE) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "requirepass":
                return parts[1]
    raise SystemExit(f"no requirepass in {AUTH_FILE}")


_env: dict[str, str] = {}


def env() -> dict[str, str]:
    if not _env:
        _env.update({**os.environ, "REDISCLI_AUTH": password()})
    return _env


def cli(addr: str, port: int, *args: str, timeout: float = 15) -> str:
    proc = subprocess.run(["redis-cli", "-h", addr, "-p", str(port), *args], env=env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or proc.stdout.startswith(("ERR", "NOAUTH", "Could not connect")):
        raise RuntimeError(f"{addr}: redis-cli {' '.join(args)}: "
                           f"{(proc.stdout + proc.stderr).strip()}")
    return proc.stdout


def cluster_nodes(addr: str, port: int) -> list[dict]:
    """CLUSTER NODES as seen from addr:port; each node's "address" is its ip:port."""
    out = []
    for line in cli(addr, port, "CLUSTER", "NODES").splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        out.append({"id": f[0], "address": f[1].split("@")[0],
                    "flags": f[2].split(","), "master": f[3], "slots": f[8:]})
    return out


def key(layout: dict, node: dict) -> str:
    """A layout node's ip:port."""
    return f"{node['address']}:{node.get('port', layout['port'])}"


def split(ipport: str) -> tuple[str, int]:
    addr, _, port = ipport.rpartition(":")
    return addr, int(port)


def info(addr: str, port: int) -> dict[str, str]:
    doc = {}
    for line in cli(addr, port, "CLUSTER", "INFO").splitlines():
        if ":" in line:
            k, v = line.strip().split(":", 1)
            doc[k] = v
    return doc


def all_nodes(layout: dict) -> list[str]:
    """Every node's ip:port."""
    return [key(layout, n) for sh in layout["shards"] for n in [sh["master"], *sh["replicas"]]]


def problems(layout: dict, placement: bool = True) -> list[str]:
    """What is not right with the cluster, one line each; without `placement`, a shard whose
    master is another of its nodes than the layout's passes."""
    found: list[str] = []
    view: list[dict] | None = None
    for node in all_nodes(layout):
        try:
            state = info(*split(node)).get("cluster_state")
            if state != "ok":
                found.append(f"{node}: cluster_state {state}")
            if view is None:
                view = cluster_nodes(*split(node))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            found.append(f"{node}: unreachable ({e})")
    if view is None:
        return found or ["no node reachable"]
    by_addr = {n["address"]: n for n in view if "fail" not in n["flags"]}
    for sh in layout["shards"]:
        addrs = [key(layout, n) for n in [sh["master"], *sh["replicas"]]]
        known = [by_addr[a] for a in addrs if a in by_addr]
        for a in addrs:
            if a not in by_addr:
                found.append(f"shard {sh['index']}: {a} is not in the cluster")
        masters = [n for n in known if "master" in n["flags"] and n["slots"]]
        if len(masters) != 1:
            found.append(f"shard {sh['index']}: {len(masters)} masters with slots")
            continue
        for n in known:
            if n is not masters[0] and n["master"] != masters[0]["id"]:
                found.append(f"shard {sh['index']}: {n['address']} does not replicate "
                             f"{masters[0]['address']}")
        planned = key(layout, sh["master"])
        if placement and masters[0]["address"] != planned and planned in by_addr:
            found.append(f"shard {sh['index']}: master is {masters[0]['address']}, the "
                         f"layout's is {planned}")
    return found


def myself(ipport: str) -> dict | None:
    """The node's own line of CLUSTER NODES."""
    return next((n for n in cluster_nodes(*split(ipport)) if "myself" in n["flags"]), None)


def is_master(ipport: str) -> bool:
    me = myself(ipport)
    return me is not None and "master" in me["flags"]


def give_back_masters(layout: dict, timeout: float = 60) -> list[str]:
    """Each shard whose master is not the layout's, while the layout's node is healthy and
    replicates that master: a graceful CLUSTER FAILOVER on that node (it waits for the
    replica to hold every write of its master, then swaps them). Returns what was moved."""
    moved = []
    for sh in layout["shards"]:
        planned = key(layout, sh["master"])
        view = {n["address"]: n for n in cluster_nodes(*split(planned))}
        me = view.get(planned)
        if me is None or "master" in me["flags"] or "fail" in " ".join(me["flags"]):
            continue
        current = next((n for n in view.values() if n["id"] == me["master"]), None)
        if current is None or "fail" in " ".join(current["flags"]):
            continue
        wait(f"{planned} to stream from {current['address']}",
             lambda a=planned: "master_link_status:up" in cli(*split(a), "INFO",
                                                               "replication"), timeout)
        # a manual failover the master does not answer within 5 s is dropped (Redis logs
        # "Manual failover timed out"): asked again, a bounded number of times
        for _ in range(max(1, int(timeout // 10))):
            cli(*split(planned), "CLUSTER", "FAILOVER")
            try:
                wait(f"{planned} to take its shard back from {current['address']}",
                     lambda a=planned: is_master(a), 10)
                break
            except SystemExit:
                continue
        if not is_master(planned):
            raise SystemExit(f"shard {sh['index']}: {planned} did not take its shard back from "
                             f"{current['address']} within {timeout:.0f} s (CLUSTER FAILOVER "
                             "refused or timed out: see its Redis log)")
        moved.append(f"shard {sh['index']}: {current['address']} -> {planned}")
    return moved


def wait(what: str, ok, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = ok()
            if last is True:
                return
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            last = e
        time.sleep(1)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}: {last}")


def apply(layout: dict) -> None:
    nodes = all_nodes(layout)
    for node in nodes:
        wait(f"{node} to answer", lambda n=node: cli(*split(n), "PING").strip() == "PONG", 90)
    masters = [key(layout, sh["master"]) for sh in layout["shards"]]
    has_slots = any((myself(a) or {}).get("slots") for a in nodes)
    if not has_slots:
        subprocess.run(["redis-cli", "--cluster", "create", *masters,
                        "--cluster-replicas", "0", "--cluster-yes"], env=env(), check=True,
                       capture_output=True, text=True, timeout=120)
    first = split(masters[0])
    wait("cluster_state ok", lambda: info(*first).get("cluster_state") == "ok", 90)
    for sh in layout["shards"]:
        addrs = [key(layout, n) for n in [sh["master"], *sh["replicas"]]]
        view = {n["address"]: n for n in cluster_nodes(*first)}
        current = [view[a] for a in addrs if a in view and "master" in view[a]["flags"]
                   and view[a]["slots"]]
        if not current:
            raise SystemExit(f"shard {sh['index']}: no master with slots among {addrs}")
        master = current[0]
        for addr in addrs:
            if addr == master["address"]:
                continue
            if addr not in view:
                cli(*split(addr), "CLUSTER", "MEET", *map(str, split(master["address"])))
                wait(f"{addr} to join", lambda a=addr: a in {
                    n["address"] for n in cluster_nodes(*first)}, 60)
                wait(f"{addr} to learn the master", lambda a=addr, m=master["id"]: m in {
                    n["id"] for n in cluster_nodes(*split(a))}, 60)
            mine = myself(addr)
            if mine is None:
                raise SystemExit(f"{addr}: CLUSTER NODES has no line for the node itself")
            if mine["master"] != master["id"]:
                cli(*split(addr), "CLUSTER", "REPLICATE", master["id"])
    # a replica just attached must have synced before it can take the master role back
    wait("every shard replicated", lambda: not problems(layout, placement=False), 120)
    for line in give_back_masters(layout):
        print(line)
    wait("every shard in place", lambda: not problems(layout), 120)


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "apply"):
        raise SystemExit(__doc__)
    with open(sys.argv[2]) as f:
        layout = json.load(f)
    if sys.argv[1] == "check":
        found = problems(layout)
        print("\n".join(found) if found else "ok")
    else:
        apply(layout)
        print("ok")


if __name__ == "__main__":
    main()
