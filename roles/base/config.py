"""Pure config for the base role: firewall ports per host, sysctl values, admin accounts."""

from __future__ import annotations

from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.ports import LOCUST_MASTER_PORT, SSH_PORT, Ports
from freehold.roles.registry import ROLE_ORDER, deployed, role

SSH = Ports(public_tcp=(SSH_PORT,))

# Ports of the roles a spec may name that no module deploys yet
UNDEPLOYED_PORTS: dict[str, Ports] = {
    "loadgen": Ports(mesh_tcp=(LOCUST_MASTER_PORT,)),
}


def host_ports(roles: list[str]) -> Ports:
    """Every port the roles of one server need, from each role's `Role.ports`."""
    ports = SSH
    for name in roles:
        this = deployed(name)
        ports = ports | (this.ports if this is not None else UNDEPLOYED_PORTS.get(name, Ports()))
    return ports


def per_server_ports(spec: ClusterSpec, server: Server) -> Ports:
    """Ports opened by roles that also run on servers not carrying them (`ports_for`)."""
    ports = Ports()
    for name in ROLE_ORDER:
        pick = role(name).ports_for
        if pick is not None:
            ports = ports | pick(spec, server)
    return ports


def firewall_vars(spec: ClusterSpec, server: Server) -> dict[str, Any]:
    peers = sorted({a for s in spec.servers if s.name != server.name
                    for a in (s.public_address, s.private_address)})
    return {
        "server": server,
        "ports": host_ports(server.roles) | per_server_ports(spec, server),
        "mesh_network": str(spec.mesh.network),
        "mesh_port": spec.mesh.port,
        "peers": peers,
    }


def sysctl_values(server: Server) -> dict[str, str]:
    """Kernel settings for databases and many connections."""
    values = {
        "net.core.somaxconn": "4096",
        "net.core.netdev_max_backlog": "16384",
        "net.ipv4.tcp_max_syn_backlog": "8192",
        "net.ipv4.ip_local_port_range": "10240 65535",
        "net.ipv4.tcp_tw_reuse": "1",
        "net.ipv4.tcp_fin_timeout": "15",
        "net.ipv4.tcp_keepalive_time": "60",
        "net.ipv4.tcp_keepalive_intvl": "10",
        "net.ipv4.tcp_keepalive_probes": "6",
        "fs.file-max": "2097152",
        "vm.swappiness": "1",
        "vm.dirty_background_ratio": "5",
        "vm.dirty_ratio": "10",
    }
    if "redis" in server.roles:
        # Redis forks for persistence: allow the copy-on-write overcommit
        values["vm.overcommit_memory"] = "1"
    return values


def admins(spec: ClusterSpec) -> list[dict[str, Any]]:
    """`roles.base.admins`: [{name, ssh_keys: [...]}]."""
    out = []
    for entry in spec.role_settings("base").get("admins", []) or []:
        out.append({"name": str(entry["name"]), "ssh_keys": list(entry.get("ssh_keys", []))})
    return out
