"""Cluster spec -> pyinfra Inventory: one host per server, groups per role, site and provider.

Groups: each role by its own name (`etcd`, `app`, … including `base` and `mesh`), each site as
`site_<name>`, each provider as `provider_<name>`. Host data: the server's roles, site, provider,
addresses, hardware, labels, the spec's name, plus pyinfra's SSH settings (`ssh_hostname` is the
public address), for redis nodes their shard (`redis_shard`, `redis_master`), for media
servers `seaweed_master`, `seaweed_data_center` and `seaweed_rack`. Global data: the postgres
primary/standby sites, mesh network and port, media copies.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from pyinfra.api import Inventory

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import (
    media_copies,
    media_failure_domain,
    media_masters,
    postgres_primary_site,
    postgres_standby_site,
    redis_layout,
)


def site_group(site: str) -> str:
    return f"site_{site}"


def provider_group(provider: str) -> str:
    return f"provider_{provider}"


def select_servers(spec: ClusterSpec, roles: Iterable[str] | None = None,
                   limit: Iterable[str] | None = None) -> list[Server]:
    """Servers carrying any of `roles` (all when None) that match `limit`: server names,
    site names, `site_<name>`/`provider_<name>` groups or shell-style globs (`app-0*`)."""
    want_roles = set(roles) if roles else None
    patterns = list(limit) if limit else None
    out = []
    for s in spec.servers:
        if want_roles is not None and not want_roles.intersection(s.roles):
            continue
        if patterns is not None and not any(_matches(s, p) for p in patterns):
            continue
        out.append(s)
    return out


def _matches(server: Server, pattern: str) -> bool:
    return (fnmatch.fnmatchcase(server.name, pattern) or pattern == server.site
            or pattern == site_group(server.site) or pattern == provider_group(server.provider))


def host_data(spec: ClusterSpec, server: Server,
              ssh: dict[str, Any] | None = None) -> dict[str, Any]:
    """The server's data; `ssh`: pyinfra SSH settings (deploy.ssh.pyinfra_data), which pin its
    host key. Host keys are checked strictly even without them (never pyinfra's accept-new)."""
    data: dict[str, Any] = {
        "spec_name": spec.name,
        "roles": list(server.roles),
        "site": server.site,
        "provider": server.provider,
        "provider_kind": spec.provider(server.provider).kind,
        "public_address": server.public_address,
        "private_address": server.private_address,
        "mesh_address": server.mesh_address,
        "cores": server.cores,
        "ram_gib": server.ram_gib,
        "disk_gib": server.disk_gib,
        "labels": dict(server.labels),
        "ssh_hostname": server.public_address,
        "ssh_user": server.ssh_user,
        "ssh_port": server.ssh_port,
        "ssh_strict_host_key_checking": "yes",
    }
    if server.ssh_key:
        data["ssh_key"] = server.ssh_key
    data.update(ssh or {})
    return data


def build_inventory(spec: ClusterSpec, roles: Iterable[str] | None = None,
                    limit: Iterable[str] | None = None,
                    ssh: dict[str, Any] | None = None) -> Inventory:
    """A pyinfra Inventory of the selected servers (see `select_servers`)."""
    servers = select_servers(spec, roles, limit)
    shard_of: dict[str, tuple[int, str]] = {}
    for shard in redis_layout(spec):
        for node in shard.nodes:
            if node.slot == 0:  # a server's first node (roles.redis.nodes_per_server > 1)
                shard_of[node.name] = (shard.index, shard.master.name)
    seaweed_masters = {s.name for s in media_masters(spec)}
    domain = media_failure_domain(spec)

    names: list[tuple[str, dict[str, Any]]] = []
    groups: dict[str, list[str]] = {}
    for s in servers:
        data = host_data(spec, s, ssh)
        if s.name in shard_of:
            data["redis_shard"], data["redis_master"] = shard_of[s.name]
        if "media" in s.roles:
            data["seaweed_master"] = s.name in seaweed_masters
            data["seaweed_data_center"] = getattr(s, domain)
            data["seaweed_rack"] = s.site
        names.append((s.name, data))
        for group in (*s.roles, site_group(s.site), provider_group(s.provider)):
            groups.setdefault(group, []).append(s.name)

    global_data = {
        "spec_name": spec.name,
        "postgres_primary_site": postgres_primary_site(spec),
        "postgres_standby_site": postgres_standby_site(spec),
        "mesh_network": str(spec.mesh.network),
        "mesh_port": spec.mesh.port,
        "media_copies": media_copies(spec),
    }
    return Inventory((names, global_data), **{g: (hosts, {}) for g, hosts in groups.items()})
