"""Pure config for the Redis 7 Cluster: shards from the spec's layout, persistence for a cache
that also carries queues, a password, cluster traffic on the mesh.

A server carries `roles.redis.nodes_per_server` nodes (default 1): node k listens on port
6379 + k (cluster bus 16379 + k). Node 0 is the Debian package's `redis-server` unit with
/etc/redis/redis.conf and /var/lib/redis; node k ≥ 1 is `redis@PORT` (the role's template unit)
with /etc/redis/redis-PORT.conf and its own data folder /var/lib/redis/PORT.
"""

from __future__ import annotations

from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import RedisNode, redis_layout, redis_nodes_per_server
from freehold.roles.ports import REDIS_BUS_PORT as BUS_PORT
from freehold.roles.ports import REDIS_PORT as PORT

NODE_TIMEOUT_MS = 5000
DATA = "/var/lib/redis"


# uploaded by the role to the coordinator: builds and checks the cluster, gives masters back
SCRIPT = "/usr/local/lib/freehold/redis_cluster.py"
LAYOUT = "/etc/redis/freehold-layout.json"

def node_port(slot: int) -> int:
    """The client port of a server's `slot`-th Redis node (its bus port is this + 10000)."""
    return PORT + slot


def node_ports(spec: ClusterSpec) -> list[int]:
    """The client ports of the Redis nodes on every redis server of the spec."""
    return [node_port(k) for k in range(redis_nodes_per_server(spec))]


def node_unit(slot: int) -> str:
    """The systemd unit that runs a server's `slot`-th node."""
    return "redis-server" if slot == 0 else f"redis@{node_port(slot)}"


def node_conf(slot: int) -> str:
    return "/etc/redis/redis.conf" if slot == 0 else f"/etc/redis/redis-{node_port(slot)}.conf"


def node_dir(slot: int) -> str:
    return DATA if slot == 0 else f"{DATA}/{node_port(slot)}"


def maxmemory_mb(spec: ClusterSpec, me: Server) -> int:
    """`roles.redis.maxmemory_mb` (per node), else 40 % of the server's RAM (half when it
    carries no other data role) split over its nodes, leaving room for the fork of a rewrite."""
    given = spec.role_settings("redis").get("maxmemory_mb")
    if given:
        return int(given)
    share = 0.4 if {"postgres", "media"} & set(me.roles) else 0.5
    return max(64, int(me.ram_gib * 1024 * share / redis_nodes_per_server(spec)))


def redis_vars(spec: ClusterSpec, me: Server | RedisNode, slot: int = 0) -> dict[str, Any]:
    server = me.server if isinstance(me, RedisNode) else me
    port = node_port(slot)
    return {
        "server": server,
        "bind": f"{server.mesh_address} 127.0.0.1",
        "announce_ip": server.mesh_address,
        "port": port,
        "bus_port": BUS_PORT + slot,
        "dir": node_dir(slot),
        "pidfile": ("/run/redis/redis-server.pid" if slot == 0
                    else f"/run/redis-{port}/redis-server.pid"),
        "node_timeout": int(spec.role_settings("redis").get("node_timeout_ms", NODE_TIMEOUT_MS)),
        "maxmemory_mb": maxmemory_mb(spec, server),
    }


def layout_doc(spec: ClusterSpec) -> dict[str, Any]:
    """What the cluster script on the servers builds: each shard's master and replicas, each
    node with its server's mesh address and its port."""
    def node(n: RedisNode) -> dict[str, Any]:
        return {"name": n.label, "address": n.mesh_address, "port": node_port(n.slot)}

    return {
        "port": PORT,
        "shards": [{"index": sh.index, "master": node(sh.master),
                    "replicas": [node(r) for r in sh.replicas]} for sh in redis_layout(spec)],
    }


def node_addresses(spec: ClusterSpec) -> list[str]:
    """Every Redis node as mesh-address:port, each server's nodes together (what the app,
    the status probes and Prometheus are given)."""
    return [f"{s.mesh_address}:{port}" for s in spec.servers_with_role("redis")
            for port in node_ports(spec)]


def coordinator(spec: ClusterSpec) -> Server | None:
    """The server that builds the cluster: the server of shard 0's master."""
    shards = redis_layout(spec)
    return shards[0].master.server if shards else None
