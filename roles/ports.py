"""Every port the platform listens on, in one place, and the `Ports` a role opens.

Roles open these ports (the base role's firewall reads each role's `Role.ports`); other roles
and the operator side point at them (the app's environment, HAProxy's backends, Prometheus'
targets, the load test's URLs). Pure data: importable by every layer above the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SSH_PORT = 22
# etcd
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
# PostgreSQL under Patroni
PG_PORT = 5432
PATRONI_REST_PORT = 8008
# PgBouncer and its HAProxy router in front of Patroni's primary and replicas
PGBOUNCER_PORT = 6432
PG_PRIMARY_PORT = 5000          # the current primary
PG_REPLICA_PORT = 5001          # replicas within the lag limit
PGROUTER_STATS_PORT = 7000      # the router's stats, loopback only
# Redis
REDIS_PORT = 6379
REDIS_BUS_PORT = 16379
# SeaweedFS
MEDIA_MASTER_PORT = 9333
MEDIA_VOLUME_PORT = 8080
MEDIA_FILER_PORT = 8888
MEDIA_S3_PORT = 8333
MEDIA_GRPC_OFFSET = 10000       # each SeaweedFS server's gRPC port is its port + this
# HAProxy + keepalived
HTTP_PORT = 80
HTTPS_PORT = 443
LB_STATS_PORT = 8404            # also its Prometheus /metrics
LB_RUNTIME_PORT = 9999
# PowerDNS authoritative (roles/dns)
DNS_PORT = 53
# the app
APP_PORT = 8000
# monitoring
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CLUSTER_PORT = 9094
NODE_EXPORTER_PORT = 9100
POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121
# backup: the restore drill's throwaway PostgreSQL
RESTORE_DRILL_PORT = 5499
# load generators: Locust's master
LOCUST_MASTER_PORT = 5557


@dataclass(frozen=True)
class Ports:
    """Ports a role listens on: `mesh_*` only from the WireGuard mesh, `public_*` from anywhere."""

    mesh_tcp: tuple[int, ...] = ()
    mesh_udp: tuple[int, ...] = ()
    public_tcp: tuple[int, ...] = ()
    public_udp: tuple[int, ...] = ()
    extra_rules: tuple[str, ...] = field(default=())  # raw nftables input rules

    def __or__(self, other: Ports) -> Ports:
        def merge(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(sorted(set(a) | set(b))) if a or b else ()

        return Ports(merge(self.mesh_tcp, other.mesh_tcp), merge(self.mesh_udp, other.mesh_udp),
                     merge(self.public_tcp, other.public_tcp),
                     merge(self.public_udp, other.public_udp),
                     tuple(dict.fromkeys(self.extra_rules + other.extra_rules)))
