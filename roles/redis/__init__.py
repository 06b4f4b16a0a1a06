"""roles/redis: a Redis 7 Cluster over the mesh; shards from the spec's layout with each
replica outside its master's site (and never on its master's server); AOF + RDB persistence
suited to a cache carrying queues; password; runs as the unprivileged `redis` user of the
Debian package. A server runs `roles.redis.nodes_per_server` nodes (config.py: ports, units,
folders, memory split)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.deploy.spec.placement import redis_nodes_per_server as nodes_per_server
from freehold.roles.common import (
    config_file,
    ensure_packages,
    mesh_dropin,
    render,
    service,
    templates_of,
    this_server,
)
from freehold.roles.ports import Ports
from freehold.roles.redis.config import (
    BUS_PORT,
    LAYOUT,
    PORT,
    SCRIPT,
    coordinator,
    layout_doc,
    node_conf,
    node_dir,
    node_port,
    node_unit,
    redis_vars,
)
from freehold.roles.redis.facts import ClusterState
from freehold.roles.registry import Role

PORTS = Ports(mesh_tcp=(PORT, BUS_PORT))


def ports_for(spec, srv) -> Ports:
    """The extra nodes' ports (client and bus) on a redis server of a spec with several nodes
    per server (node 0's are PORTS)."""
    if "redis" not in srv.roles:
        return Ports()
    extra = [node_port(k) for k in range(1, nodes_per_server(spec))]
    return Ports(mesh_tcp=tuple(sorted([*extra, *(p + BUS_PORT - PORT for p in extra)])))


_t = templates_of(__file__)


def packages(ctx) -> list[str]:
    return ["redis-server", "redis-tools", "python3"]


@deploy("redis: nodes")
def configure(ctx) -> None:
    srv = this_server(ctx)
    ensure_packages(packages(ctx), "redis")
    auth = config_file("/etc/redis/freehold-auth.conf",
                       render(_t("auth.conf.j2"), password=ctx.secrets["redis"]),
                       mode="640", user="redis", group="redis")
    conf = config_file(node_conf(0),
                       render(_t("redis.conf.j2"), **redis_vars(ctx.spec, srv)),
                       mode="640", user="redis", group="redis")
    dropin = mesh_dropin("redis-server")
    changed = auth.will_change or conf.will_change or dropin.will_change
    # a restart loses nothing (AOF) but one at a time keeps every shard served
    service("redis-server", restart=changed, daemon_reload=dropin.will_change, serial=changed)
    extra = range(1, nodes_per_server(ctx.spec))
    if not extra:
        return
    unit = config_file("/etc/systemd/system/redis@.service",
                       render(_t("redis@.service.j2")))
    for slot in extra:
        files.directory(name=f"Redis node {node_port(slot)} data folder", path=node_dir(slot),
                        user="redis", group="redis", mode="750")
        node = config_file(node_conf(slot),
                           render(_t("redis.conf.j2"), **redis_vars(ctx.spec, srv, slot)),
                           mode="640", user="redis", group="redis")
        service(node_unit(slot), restart=auth.will_change or node.will_change or unit.will_change,
                daemon_reload=unit.will_change, serial=True)


@deploy("redis: cluster")
def cluster(ctx) -> None:
    lead = coordinator(ctx.spec)
    if lead is None or host.name != lead.name:
        return
    files.directory(name="freehold scripts folder", path="/usr/local/lib/freehold")
    script = files.put(name="Redis cluster script", src=str(Path(__file__).parent /
                       "cluster_setup.py"), dest=SCRIPT, mode="755")
    layout = files.put(name="Redis cluster layout",
                       src=StringIO(json.dumps(layout_doc(ctx.spec), indent=2) + "\n"),
                       dest=LAYOUT, mode="644")
    state = "not checked"
    if not (script.will_change or layout.will_change):
        state = host.get_fact(ClusterState, script=SCRIPT, layout=LAYOUT)
    if state != "ok":
        server.shell(name="Build the Redis Cluster", commands=[f"python3 {SCRIPT} apply {LAYOUT}"],
                     _timeout=600)


ROLE = Role("redis",
            steps=(configure, cluster),
            ports=PORTS,
            units=("redis-server.service",),
            packages=packages,
            ports_for=ports_for)
