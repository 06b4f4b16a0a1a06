"""Pure config for the Redis 7 Cluster: shards from the spec's layout, persistence for a cache
that also carries queues, a password, cluster traffic on the mesh."""

from __future__ import annotations

from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import redis_layout
from freehold.roles.ports import REDIS_BUS_PORT as BUS_PORT
from freehold.roles.ports import REDIS_PORT as PORT

NODE_TIMEOUT_MS = 5000


def maxmemory_mb(spec: ClusterSpec, me: Server) -> int:
    """`roles.redis.maxmemory_mb`, else 40 % of the server's RAM (half when it carries no
    other data role), leaving room for the fork of a rewrite."""
    given = spec.role_settings("redis").get("maxmemory_mb")
    if given:
        return int(given)
    share = 0.4 if {"postgres", "media"} & set(me.roles) else 0.5
    return max(64, int(me.ram_gib * 1024 * share))


def redis_vars(spec: ClusterSpec, me: Server) -> dict[str, Any]:
    return {
        "server": me,
        "bind": f"{me.mesh_address} 127.0.0.1",
        "announce_ip": me.mesh_address,
        "port": PORT,
        "bus_port": BUS_PORT,
        "node_timeout": int(spec.role_settings("redis").get("node_timeout_ms", NODE_TIMEOUT_MS)),
        "maxmemory_mb": maxmemory_mb(spec, me),
    }


def layout_doc(spec: ClusterSpec) -> dict[str, Any]:
    """What the cluster script on the servers builds: each shard's master and replicas."""
    return {
        "port": PORT,
        "shards": [{
            "index": sh.index,
            "master": {"name": sh.master.name, "address": sh.master.mesh_address},
            "replicas": [{"name": r.name, "address": r.mesh_address} for r in sh.replicas],
        } for sh in redis_layout(spec)],
    }


def coordinator(spec: ClusterSpec) -> Server | None:
    """The server that builds the cluster: shard 0's master."""
    shards = redis_layout(spec)
    return shards[0].master if shards else None
