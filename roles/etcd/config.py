"""Pure config for etcd 3.4: members over the mesh, timeouts from inter-site latency."""

from __future__ import annotations

import math
from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.ports import ETCD_CLIENT_PORT as CLIENT_PORT
from freehold.roles.ports import ETCD_PEER_PORT as PEER_PORT

ASSUMED_RTT_MS = 50.0  # when the spec gives no latency between two sites


def rtt(spec: ClusterSpec, a: str, b: str) -> float:
    """Round trip between two sites, whichever of the two sites states it."""
    if a == b:
        return 0.0
    for x, y in ((a, b), (b, a)):
        value = spec.site(x).latency_ms.get(y)
        if value is not None:
            return float(value)
    return ASSUMED_RTT_MS


def members(spec: ClusterSpec) -> list[Server]:
    return spec.servers_with_role("etcd")


def timeouts(spec: ClusterSpec) -> tuple[int, int]:
    """(heartbeat_ms, election_ms) per etcd's tuning guide: the heartbeat about the largest
    round trip between members (never under 100 ms), the election timeout 10 heartbeats
    (never under 1000 ms)."""
    sites = sorted({m.site for m in members(spec)})
    worst = max((rtt(spec, a, b) for a in sites for b in sites), default=0.0)
    heartbeat = max(100, int(math.ceil(worst * 1.5 / 10.0)) * 10)
    election = max(1000, heartbeat * 10)
    return heartbeat, election


def client_urls(spec: ClusterSpec) -> list[str]:
    return [f"http://{m.mesh_address}:{CLIENT_PORT}" for m in members(spec)]


def etcd_env(spec: ClusterSpec, me: Server) -> dict[str, Any]:
    heartbeat, election = timeouts(spec)
    cluster = ",".join(f"{m.name}=http://{m.mesh_address}:{PEER_PORT}" for m in members(spec))
    return {
        "ETCD_NAME": me.name,
        "ETCD_DATA_DIR": "/var/lib/etcd/freehold",
        "ETCD_LISTEN_PEER_URLS": f"http://{me.mesh_address}:{PEER_PORT}",
        "ETCD_LISTEN_CLIENT_URLS": f"http://{me.mesh_address}:{CLIENT_PORT},"
                                   f"http://127.0.0.1:{CLIENT_PORT}",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"http://{me.mesh_address}:{PEER_PORT}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://{me.mesh_address}:{CLIENT_PORT}",
        "ETCD_INITIAL_CLUSTER": cluster,
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_CLUSTER_TOKEN": f"freehold-{spec.name}",
        "ETCD_HEARTBEAT_INTERVAL": heartbeat,
        "ETCD_ELECTION_TIMEOUT": election,
        # a member back from a power loss must not depose a working leader: without pre-vote
        # (etcd 3.4's default) its campaigns at ever higher terms did, and Patroni's new
        # primary, cut off from etcd for longer than retry_timeout, demoted itself (the
        # leader-kill drill on the lab: writes failed again 25 s after they had come back)
        "ETCD_PRE_VOTE": "true",
        "ETCD_SNAPSHOT_COUNT": 10000,
        "ETCD_AUTO_COMPACTION_MODE": "periodic",
        "ETCD_AUTO_COMPACTION_RETENTION": "1h",
        "ETCD_QUOTA_BACKEND_BYTES": 2 * 1024**3,
        "ETCD_ENABLE_V2": "true",
    }
