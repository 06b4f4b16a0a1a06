"""Pure config for the WireGuard full mesh."""

from __future__ import annotations

from typing import Any

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.models import IMPLIED_ROLES

PEER_WAIT_S = 60


def endpoint(me: Server, peer: Server) -> str:
    """Same site and provider: the private address; anything else: the public one."""
    if peer.site == me.site and peer.provider == me.provider:
        return peer.private_address
    return peer.public_address


def wireguard_vars(spec: ClusterSpec, me: Server, secrets: Secrets) -> dict[str, Any]:
    peers = [{
        "name": p.name,
        "site": p.site,
        "public_key": secrets.wireguard_public(p.name),
        "mesh_address": p.mesh_address,
        "endpoint": endpoint(me, p),
    } for p in spec.servers if p.name != me.name]
    return {
        "server": me,
        "address": f"{me.mesh_address}/{spec.mesh.network.prefixlen}",
        "port": spec.mesh.port,
        "keepalive": spec.mesh.keepalive,
        "private_key": secrets.wireguard_private(me.name),
        "peers": peers,
    }


def serves(server: Server) -> bool:
    """Whether the server carries a role beyond what every server carries (base, mesh; the
    monitoring exporters are not in `roles`): the roles after the mesh dial such servers."""
    return any(r not in IMPLIED_ROLES for r in server.roles)


def waited_peers(spec: ClusterSpec, me: Server) -> list[Server]:
    """The peers to wait for once the mesh changed on `me`: the servers carrying a role, and
    only when `me` carries one too (a bare server's later steps dial nobody). On a 300-server
    lab with a 12-server core that is 11 peers, not 299."""
    if not serves(me):
        return []
    return [p for p in spec.servers if p.name != me.name and serves(p)]


def wait_peers_command(peers: list[str], timeout_s: int = PEER_WAIT_S) -> str:
    """Ping every peer at once (each ping waits 1 s at most) until all answer or `timeout_s`
    passed; never fails (a peer may be down: the roles after it say so)."""
    return (f"end=$(( $(date +%s) + {timeout_s} )); while :; do "
            f"left=$(for p in {' '.join(peers)}; do "
            "{ ping -c1 -W1 -q $p >/dev/null 2>&1 || echo $p; } & done; wait); "
            "[ -z \"$left\" ] && exit 0; [ $(date +%s) -ge $end ] && break; sleep 1; done; "
            "echo \"mesh: no answer yet from\" $left >&2; exit 0")
