"""Size the owned cluster from a migration manifest and emit a cluster spec to fill in."""

from __future__ import annotations

import math
from typing import Any

# an owned/rented server of the default class; cloud vCPUs are hyper-threads (2 per core)
SERVER_CORES = 32
SERVER_RAM_GIB = 128
SERVER_DISK_GIB = 3840
SITES = ("a", "b", "c")
MIN_PER_ROLE = {"etcd": 3, "postgres": 3, "redis": 6, "lb": 6, "media": 3, "monitoring": 2,
                "app": 2, "worker": 2, "pgbouncer": 2, "backup": 1}


def cloud_demand(manifest: dict[str, Any]) -> dict[str, dict[str, float]]:
    """vCPUs, RAM and disk per Freehold role that the cloud deployment uses now."""
    need: dict[str, dict[str, float]] = {}

    def add(role: str, vcpu: float = 0, ram: float = 0, disk: float = 0) -> None:
        d = need.setdefault(role, {"vcpus": 0.0, "ram_gib": 0.0, "disk_gib": 0.0})
        d["vcpus"] += vcpu
        d["ram_gib"] += ram
        d["disk_gib"] += disk

    for reg in manifest.get("regions", []):
        for i in reg.get("instances", []):
            if i.get("state", "running") in ("running", "pending"):
                add(i["role"], i.get("cores") or 2, i.get("ram_gib") or 4)
        for d in reg.get("rds", []):
            add("postgres", disk=d.get("storage_gib") or 0)
    media = sum(b["bytes"] for b in manifest.get("s3_buckets", [])) / 2**30
    add("media", disk=media * 2)  # two copies across sites
    return need


ACCOUNT_KEYS = ("accounts", "account_count", "total_accounts")


def manifest_accounts(manifest: dict[str, Any]) -> int | None:
    """Accounts the migrated network holds, when the manifest says (top level or under
    `traffic:` / `app:`, a number or text like 10M)."""
    from freehold.deploy.capacity import parse_accounts

    for where in (manifest, manifest.get("traffic"), manifest.get("app")):
        if not isinstance(where, dict):
            continue
        for key in ACCOUNT_KEYS:
            raw = where.get(key)
            if isinstance(raw, bool) or raw is None:
                continue
            try:
                n = parse_accounts(str(raw))
            except ValueError:
                continue
            return n
    return None


def capacity_servers(manifest: dict[str, Any]) -> dict[str, int] | None:
    """Servers per role from the capacity model (`freehold capacity`, the default profile)
    for the manifest's accounts; None when the manifest does not say how many accounts."""
    accounts = manifest_accounts(manifest)
    if accounts is None:
        return None
    from freehold.deploy.capacity import servers_per_role

    return servers_per_role(accounts)


def size(manifest: dict[str, Any]) -> dict[str, int]:
    need = cloud_demand(manifest)
    servers: dict[str, int] = {}
    for role, d in need.items():
        by_cpu = d["vcpus"] / 2 / SERVER_CORES
        by_ram = d["ram_gib"] / SERVER_RAM_GIB
        by_disk = d["disk_gib"] / (SERVER_DISK_GIB * 0.7)
        servers[role] = math.ceil(max(by_cpu, by_ram, by_disk))
    for role, n in (capacity_servers(manifest) or {}).items():
        servers[role] = max(servers.get(role, 0), n)
    for role, n in MIN_PER_ROLE.items():
        servers[role] = max(servers.get(role, 0), n)
    return dict(sorted(servers.items()))


def emit_spec(name: str, servers: dict[str, int]) -> dict[str, Any]:
    """A cluster spec, servers spread over three sites, addresses left to fill in."""
    out = []
    for role, n in servers.items():
        for k in range(n):
            site = SITES[k % len(SITES)]
            out.append({"name": f"{role}-{site}{k // len(SITES) + 1}", "site": site,
                        "provider": f"provider-{site}", "public_address": "FILL-IN",
                        "private_address": "FILL-IN", "cores": SERVER_CORES,
                        "ram_gib": SERVER_RAM_GIB, "disk_gib": SERVER_DISK_GIB,
                        "roles": [role]})
    return {"name": name,
            "providers": [{"name": f"provider-{s}", "kind": "rented"} for s in SITES],
            "sites": [{"name": s, "provider": f"provider-{s}"} for s in SITES],
            "mesh": {"network": "100.96.0.0/16"}, "servers": out}
