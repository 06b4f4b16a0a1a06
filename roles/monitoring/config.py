"""Pure config for roles/monitoring: exporter flags, Prometheus scrape jobs, alert rules and
Alertmanager, all from the spec. Everything is scraped over mesh addresses."""

from __future__ import annotations

from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import redis_nodes_per_server
from freehold.roles.app.config import app_port
from freehold.roles.common.envfile import environment_file
from freehold.roles.ports import (
    ALERTMANAGER_CLUSTER_PORT,
    ALERTMANAGER_PORT,
    POSTGRES_EXPORTER_PORT,
    PROMETHEUS_PORT,
    REDIS_EXPORTER_PORT,
    REDIS_PORT,
    Ports,
)
from freehold.roles.ports import ETCD_CLIENT_PORT as ETCD_PORT
from freehold.roles.ports import LB_STATS_PORT as HAPROXY_METRICS_PORT  # /metrics on the stats page
from freehold.roles.ports import NODE_EXPORTER_PORT as NODE_PORT
from freehold.roles.ports import PATRONI_REST_PORT as PATRONI_PORT
from freehold.roles.registry import ROLE_ORDER

SCRAPE_INTERVAL_S = 10  # roles.monitoring.scrape_interval_s (5-60) changes it
EVALUATION_INTERVAL = "10s"
RETENTION = "15d"
RULES_FILE = "/etc/prometheus/rules/freehold.yml"

# Debian 12 packages: one exporter per role it watches, the node exporter on every server
EXPORTERS: dict[str, tuple[str, int]] = {
    "base": ("prometheus-node-exporter", NODE_PORT),
    "postgres": ("prometheus-postgres-exporter", POSTGRES_EXPORTER_PORT),
    "redis": ("prometheus-redis-exporter", REDIS_EXPORTER_PORT),
}
SERVER_PACKAGES = ["prometheus", "prometheus-alertmanager"]

# alert thresholds (the spec's roles.monitoring may override any of them)
THRESHOLDS: dict[str, float] = {
    "replication_lag_bytes": 16 * 1024 * 1024,
    "error_ratio": 0.05,          # 5xx share of app requests over 5 minutes
    "p99_seconds": 1.0,           # app request latency, 99th percentile over 5 minutes
    "disk_free_ratio": 0.10,      # free space left on a file system
    "disk_hours_to_full": 24,     # linear prediction from the last 6 hours
    "fanout_lag_seconds": 30,     # age of the newest post when pushed to feeds
    "stream_lag_entries": 10000,  # stream entries no consumer group has read yet
}


def exporters_on(server: Server) -> list[tuple[str, int]]:
    """(package, port) of the exporters a server runs: node everywhere, plus per role."""
    return [EXPORTERS[r] for r in EXPORTERS if r == "base" or r in server.roles]


def exporter_ports(server: Server) -> Ports:
    return Ports(mesh_tcp=tuple(sorted(port for _, port in exporters_on(server))))


def monitors(spec: ClusterSpec) -> list[Server]:
    return spec.servers_with_role("monitoring")


def thresholds(spec: ClusterSpec) -> dict[str, float]:
    settings = spec.role_settings("monitoring")
    return {k: float(settings.get(k, v)) for k, v in THRESHOLDS.items()}


def _targets(servers: list[Server], port: int) -> list[dict[str, Any]]:
    """One static config per server, labelled with its name, site and provider."""
    return [{"targets": [f"{s.mesh_address}:{port}"],
             "labels": {"instance": s.name, "site": s.site, "provider": s.provider}}
            for s in servers]


def scrape_jobs(spec: ClusterSpec) -> dict[str, dict[str, Any]]:
    """job name -> {"port", "path", "servers"} for every target the spec has."""
    lb_port = HAPROXY_METRICS_PORT
    jobs: dict[str, dict[str, Any]] = {
        "node": {"port": NODE_PORT, "servers": spec.servers},
        "postgres": {"port": POSTGRES_EXPORTER_PORT,
                     "servers": spec.servers_with_role("postgres")},
        "patroni": {"port": PATRONI_PORT, "servers": spec.servers_with_role("postgres")},
        "etcd": {"port": ETCD_PORT, "servers": spec.servers_with_role("etcd")},
        "redis": {"port": REDIS_EXPORTER_PORT, "servers": spec.servers_with_role("redis")},
        "haproxy": {"port": lb_port, "servers": spec.servers_with_role("lb")},
        "app": {"port": app_port(spec), "servers": spec.servers_with_role("app")},
        "prometheus": {"port": PROMETHEUS_PORT, "servers": monitors(spec)},
        "alertmanager": {"port": ALERTMANAGER_PORT, "servers": monitors(spec)},
    }
    # a role the kit cannot deploy yet is not scraped (its targets would only alert)
    needs = {"haproxy": "lb", "app": "app"}
    return {name: {"path": "/metrics", **job} for name, job in jobs.items()
            if job["servers"] and needs.get(name, "base") in ROLE_ORDER}


def scrape_interval_s(spec: ClusterSpec) -> int:
    return int(spec.role_settings("monitoring").get("scrape_interval_s") or SCRAPE_INTERVAL_S)


def prometheus_config(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": f"{scrape_interval_s(spec)}s", "scrape_timeout": "5s",
                   "evaluation_interval": EVALUATION_INTERVAL,
                   "external_labels": {"cluster": spec.name}},
        "rule_files": [RULES_FILE],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [
            f"{m.mesh_address}:{ALERTMANAGER_PORT}" for m in monitors(spec)]}]}]},
        "scrape_configs": [{"job_name": name, "metrics_path": job["path"],
                            "static_configs": _targets(job["servers"], job["port"])}
                           for name, job in scrape_jobs(spec).items()] + redis_node_jobs(spec),
    }


def redis_node_jobs(spec: ClusterSpec) -> list[dict[str, Any]]:
    """The extra Redis nodes of servers that run several (roles.redis.nodes_per_server): each
    scraped through its server's redis exporter (`/scrape?target=redis://ADDR:PORT`, the
    exporter's multi-target endpoint, with the password it has)."""
    extra = range(1, redis_nodes_per_server(spec))
    servers = spec.servers_with_role("redis")
    if not extra or not servers:
        return []
    return [{"job_name": "redis_nodes", "metrics_path": "/scrape",
             "static_configs": [{
                 "targets": [f"redis://{s.mesh_address}:{REDIS_PORT + k}" for k in extra],
                 "labels": {"server": s.name, "site": s.site, "provider": s.provider,
                            "exporter": f"{s.mesh_address}:{REDIS_EXPORTER_PORT}"}}
                 for s in servers],
             "relabel_configs": [
                 {"source_labels": ["__address__"], "target_label": "__param_target"},
                 {"source_labels": ["__param_target"], "target_label": "instance"},
                 {"source_labels": ["exporter"], "target_label": "__address__"}]}]


def alertmanager_config(spec: ClusterSpec) -> dict[str, Any]:
    """Alerts grouped per alert name and site; a webhook when the spec names one
    (`roles.monitoring.webhook_url`), else kept in Alertmanager (its API and UI)."""
    url = spec.role_settings("monitoring").get("webhook_url")
    receiver: dict[str, Any] = {"name": "on-call"}
    if url:
        receiver["webhook_configs"] = [{"url": str(url), "send_resolved": True}]
    return {
        "route": {"receiver": "on-call", "group_by": ["alertname", "site"],
                  "group_wait": "10s", "group_interval": "1m", "repeat_interval": "4h"},
        "inhibit_rules": [{"source_matchers": ["severity=critical"],
                           "target_matchers": ["severity=warning"],
                           "equal": ["alertname", "instance"]}],
        "receivers": [receiver],
    }


def prometheus_args(me: Server) -> str:
    return (f"--web.listen-address={me.mesh_address}:{PROMETHEUS_PORT} "
            f"--storage.tsdb.retention.time={RETENTION} --web.enable-lifecycle")


def alertmanager_args(spec: ClusterSpec, me: Server) -> str:
    peers = " ".join(f"--cluster.peer={m.mesh_address}:{ALERTMANAGER_CLUSTER_PORT}"
                     for m in monitors(spec) if m.name != me.name)
    return (f"--web.listen-address={me.mesh_address}:{ALERTMANAGER_PORT} "
            f"--cluster.listen-address={me.mesh_address}:{ALERTMANAGER_CLUSTER_PORT} "
            f"--cluster.advertise-address={me.mesh_address}:{ALERTMANAGER_CLUSTER_PORT} "
            f"{peers}").strip()


def node_exporter_args(me: Server) -> str:
    return (f"--web.listen-address={me.mesh_address}:{NODE_PORT} "
            "--collector.filesystem.mount-points-exclude="
            "^/(dev|proc|run|sys|var/lib/docker/.+)($|/)")


def postgres_exporter_env(me: Server) -> dict[str, str]:
    """Peer authentication over the local socket as the `prometheus` user (pg_monitor)."""
    return {
        "DATA_SOURCE_NAME": "host=/var/run/postgresql user=prometheus dbname=postgres "
                            "sslmode=disable",
        "ARGS": f"--web.listen-address={me.mesh_address}:{POSTGRES_EXPORTER_PORT}",
    }


def redis_exporter_env(me: Server, password: str) -> dict[str, str]:
    return {
        "REDIS_PASSWORD": password,
        "ARGS": (f"-web.listen-address {me.mesh_address}:{REDIS_EXPORTER_PORT} "
                 f"-redis.addr redis://{me.mesh_address}:{REDIS_PORT}"),
    }


def env_file(values: dict[str, str], role_note: str) -> str:
    return environment_file(values, f"Managed by freehold (roles/monitoring): {role_note}")
