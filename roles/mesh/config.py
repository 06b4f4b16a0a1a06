"""Pure config for the WireGuard full mesh."""

from __future__ import annotations

from typing import Any

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec, Server


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
        "private_key": secrets.wireguard_private(me.name),
        "peers": peers,
    }
