"""Generated cluster specs (as YAML documents) for tests and benchmarks.

`three_site_doc()`: the lab's shape — 3 sites, one provider each, 9 servers, every rule met.
`large_doc(per_site_app=50)`: ~300 servers over 4 sites and 3 providers (one provider holds two
sites), written with ranges, that meets every rule and survives any one site or provider.
"""

from __future__ import annotations

import copy
from typing import Any

_THREE_SITE: dict[str, Any] = {
    "name": "three",
    "providers": [{"name": "p1", "kind": "owned"}, {"name": "p2", "kind": "rented"},
                  {"name": "p3", "kind": "cloud"}],
    "sites": [{"name": "a", "provider": "p1", "latency_ms": {"b": 10, "c": 25}},
              {"name": "b", "provider": "p2", "latency_ms": {"c": 20}},
              {"name": "c", "provider": "p3"}],
    "defaults": {"cores": 1, "ram_gib": 1, "disk_gib": 10},
    "roles": {"postgres": {"primary_site": "a", "standby_site": "b"}, "redis": {"replicas": 1},
              "media": {"masters": 3}},
    "servers": [
        {"name": "a1", "site": "a", "address": "10.0.1.10",
         "roles": ["etcd", "postgres", "redis", "media"]},
        {"name": "a2", "site": "a", "address": "10.0.1.11",
         "roles": ["redis", "lb", "pgbouncer", "monitoring"]},
        {"name": "a3", "site": "a", "address": "10.0.1.12", "roles": ["lb", "app", "worker"]},
        {"name": "b1", "site": "b", "address": "10.0.2.10",
         "roles": ["etcd", "postgres", "redis", "media"]},
        {"name": "b2", "site": "b", "address": "10.0.2.11", "roles": ["redis", "lb", "pgbouncer"]},
        {"name": "b3", "site": "b", "address": "10.0.2.12",
         "roles": ["lb", "app", "worker", "backup"]},
        {"name": "c1", "site": "c", "address": "10.0.3.10",
         "roles": ["etcd", "postgres", "redis", "media"]},
        {"name": "c2", "site": "c", "address": "10.0.3.11", "roles": ["redis", "monitoring"]},
        {"name": "c3", "site": "c", "address": "10.0.3.12",
         "roles": ["backup", "worker", "loadgen"]},
    ],
}


def three_site_doc() -> dict[str, Any]:
    """A fresh copy of the 3-site, 9-server spec document (tests mutate it)."""
    return copy.deepcopy(_THREE_SITE)


def large_doc(per_site_app: int = 50) -> dict[str, Any]:
    """About 100 + 4 × per_site_app servers (300 with the default) in 4 sites at 3 providers."""
    sites = [("a", "owned-dc"), ("b", "rent-co"), ("c", "rent-co"), ("d", "cloud-co")]
    blocks: list[tuple[str, int, list[str]]] = [
        ("pg", 2, ["postgres", "pgbouncer"]),
        ("redis", 6, ["redis"]),
        ("lb", 2, ["lb"]),
        ("app", per_site_app, ["app"]),
        ("worker", 10, ["worker"]),
        ("media", 3, ["media"]),
    ]
    extra = {  # site -> extra blocks
        "a": [("etcd", 1, ["etcd"]), ("mon", 1, ["monitoring"])],
        "b": [("etcd", 1, ["etcd"]), ("backup", 1, ["backup"])],
        "c": [("etcd", 1, ["etcd"])],
        "d": [("etcd", 2, ["etcd"]), ("mon", 1, ["monitoring"]), ("backup", 1, ["backup"]),
              ("loadgen", 2, ["loadgen"])],
    }
    servers = []
    for k, (site, _) in enumerate(sites, start=1):
        for b, (suffix, count, roles) in enumerate(blocks + extra[site], start=1):
            width = len(str(count))
            servers.append({
                "name": f"{site}-{suffix}-[{1:0{width}d}:{count}]",
                "site": site,
                "address": f"10.{k}.{b}.[10:{9 + count}]",
                "roles": roles,
            })
    return {
        "name": "large",
        "providers": [{"name": "owned-dc", "kind": "owned"}, {"name": "rent-co", "kind": "rented"},
                      {"name": "cloud-co", "kind": "cloud"}],
        "sites": [{"name": s, "provider": p, "network": f"10.{k}.0.0/16"}
                  for k, (s, p) in enumerate(sites, start=1)],
        "defaults": {"cores": 32, "ram_gib": 128, "disk_gib": 3840},
        "roles": {"postgres": {"primary_site": "a", "standby_site": "d"},
                  "redis": {"replicas": 1, "masters": 12}, "media": {"masters": 3}},
        "servers": servers,
    }
