"""roles/monitoring: Prometheus and Alertmanager on the servers carrying the role (two per
cluster, each scraping everything, alerting through both Alertmanagers, which gossip to send
each alert once), and the exporters on the servers they watch: the node exporter on every
server, the postgres exporter on PostgreSQL servers, the redis exporter on Redis servers.
Every exporter listens on its server's mesh address only."""

from __future__ import annotations

import yaml
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.common import (
    config_file,
    ensure_packages,
    mesh_dropin,
    render,
    service,
    template_path,
    this_server,
)
from freehold.roles.monitoring.config import (
    ALERTMANAGER_CLUSTER_PORT,
    ALERTMANAGER_PORT,
    PROMETHEUS_PORT,
    RULES_FILE,
    SERVER_PACKAGES,
    alertmanager_args,
    alertmanager_config,
    env_file,
    exporter_ports,
    exporters_on,
    node_exporter_args,
    postgres_exporter_env,
    prometheus_args,
    prometheus_config,
    redis_exporter_env,
    thresholds,
)
from freehold.roles.ports import Ports
from freehold.roles.postgres import patroni_role
from freehold.roles.postgres.facts import RoleExists
from freehold.roles.registry import Role

PORTS = Ports(mesh_tcp=(PROMETHEUS_PORT, ALERTMANAGER_PORT, ALERTMANAGER_CLUSTER_PORT),
              mesh_udp=(ALERTMANAGER_CLUSTER_PORT,))
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = "/etc/prometheus/alertmanager.yml"


def packages(ctx) -> list[str]:
    """The exporters of this server, and Prometheus and Alertmanager on a monitoring server:
    in base's one apt transaction (a second apt run per server cost a 300-server first
    deploy minutes of dpkg on the shared cores); the steps' own installs then find them."""
    srv = this_server(ctx)
    return [pkg for pkg, _ in exporters_on(srv)] + (
        list(SERVER_PACKAGES) if "monitoring" in srv.roles else [])


def hosts(spec: ClusterSpec) -> list[str]:
    """Every server: each runs at least the node exporter."""
    return [s.name for s in spec.servers]


def ports_for(spec: ClusterSpec, srv: Server) -> Ports:
    return exporter_ports(srv)


def rules_text(spec: ClusterSpec) -> str:
    return render(template_path(__file__, "rules.yml.j2"), cluster=spec.name,
                  t=thresholds(spec))


def _managed_yaml(doc: dict, note: str) -> str:
    return f"# Managed by freehold (roles/monitoring): {note}\n" + yaml.safe_dump(
        doc, sort_keys=False)


def _exporter(package: str, env: dict[str, str], secret: bool = False) -> None:
    conf = config_file(f"/etc/default/{package}", env_file(env, package),
                       mode="600" if secret else "644")
    dropin = mesh_dropin(package)
    service(package, restart=conf.will_change or dropin.will_change,
            daemon_reload=dropin.will_change)


@deploy("monitoring: exporters")
def exporters(ctx) -> None:
    srv = this_server(ctx)
    wanted = exporters_on(srv)
    ensure_packages([pkg for pkg, _ in wanted], "monitoring")
    _exporter("prometheus-node-exporter", {"ARGS": node_exporter_args(srv)})
    if "redis" in srv.roles:
        _exporter("prometheus-redis-exporter", redis_exporter_env(srv, ctx.secrets["redis"]),
                  secret=True)
    if "postgres" in srv.roles:
        _exporter("prometheus-postgres-exporter", postgres_exporter_env(srv))
        leader = patroni_role(srv.mesh_address) == "leader"
        if leader and not host.get_fact(RoleExists, role="prometheus"):
            server.shell(name="PostgreSQL role prometheus (pg_monitor, peer login)",
                         commands=["runuser -u postgres -- psql -X -q -c "
                                   "'CREATE ROLE prometheus LOGIN IN ROLE pg_monitor'"])


@deploy("monitoring: Prometheus and Alertmanager")
def prometheus(ctx) -> None:
    srv = this_server(ctx)
    if "monitoring" not in srv.roles:
        return
    ensure_packages(SERVER_PACKAGES, "monitoring")
    files.directory(name="rules folder", path="/etc/prometheus/rules")
    rules = config_file(RULES_FILE, rules_text(ctx.spec))
    conf = config_file(PROMETHEUS_CONFIG, _managed_yaml(prometheus_config(ctx.spec),
                                                        "scrape jobs from the spec"))
    args = config_file("/etc/default/prometheus",
                       env_file({"ARGS": prometheus_args(srv)}, "prometheus"))
    for what, op in host.loop((("rules", rules), ("config", conf))):
        server.shell(name=f"Check Prometheus {what}",
                     commands=[f"promtool check config {PROMETHEUS_CONFIG}"], _if=op.did_change)
    dropin = mesh_dropin("prometheus")
    service("prometheus", restart=args.will_change or dropin.will_change,
            reload=conf.will_change or rules.will_change, daemon_reload=dropin.will_change)

    am = config_file(ALERTMANAGER_CONFIG, _managed_yaml(alertmanager_config(ctx.spec),
                                                        "routes and receivers"))
    am_args = config_file("/etc/default/prometheus-alertmanager",
                          env_file({"ARGS": alertmanager_args(ctx.spec, srv)},
                                   "prometheus-alertmanager"))
    server.shell(name="Check Alertmanager config",
                 commands=[f"amtool check-config {ALERTMANAGER_CONFIG}"], _if=am.did_change)
    am_dropin = mesh_dropin("prometheus-alertmanager")
    service("prometheus-alertmanager", restart=am_args.will_change or am_dropin.will_change,
            reload=am.will_change, daemon_reload=am_dropin.will_change)


ROLE = Role("monitoring",
            steps=(exporters, prometheus),
            ports=PORTS,
            units=("prometheus.service", "prometheus-alertmanager.service",
                   "prometheus-node-exporter.service"),
            hosts=hosts,
            ports_for=ports_for,
            packages=packages)
