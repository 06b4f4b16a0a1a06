"""Several Redis nodes per server (`roles.redis.nodes_per_server`): the spec setting, the layout
over nodes, the role's config per node, and the roles that must learn of every node."""

from __future__ import annotations

from typing import Any

import pytest

from freehold.deploy.spec import parse_spec
from freehold.deploy.spec.errors import SpecError
from freehold.deploy.spec.placement import (
    RedisNode,
    check_placement,
    redis_layout,
    redis_nodes,
    survival,
)
from freehold.deploy.spec.synthetic import three_site_doc
from freehold.roles import redis as redis_role
from freehold.roles.common import render, template_path
from freehold.roles.redis import ports_for
from freehold.roles.redis.config import (
    coordinator,
    layout_doc,
    maxmemory_mb,
    node_addresses,
    node_unit,
    redis_vars,
)


def doc(k: int, cores: int = 4) -> dict[str, Any]:
    d = three_site_doc()  # 6 redis servers: a1 a2 b1 b2 c1 c2
    d["roles"]["redis"] = {"replicas": 1, "nodes_per_server": k}
    d["defaults"]["cores"] = cores
    return d


def test_nodes_per_server_spreads_masters_and_keeps_replicas_off_their_servers() -> None:
    spec = parse_spec(doc(2))
    assert len(redis_nodes(spec)) == 12
    shards = redis_layout(spec)
    assert len(shards) == 6  # 12 nodes // (1 + 1 replica)
    # masters: every server's first node before any second one, spread over providers
    assert sorted(sh.master.label for sh in shards) == ["a1", "a2", "b1", "b2", "c1", "c2"]
    for sh in shards:
        assert len(sh.replicas) == 1
        r = sh.replicas[0]
        assert r.slot == 1 and r.name != sh.master.name and r.site != sh.master.site
    assert check_placement(spec)[0] == []
    surv = survival(spec)
    assert surv["any_site"] and surv["any_provider"], surv["line"]
    # one node per server is the layout as it was (names are the servers')
    one = redis_layout(parse_spec(doc(1)))
    assert [n.label for sh in one for n in sh.nodes] == [n.name for sh in one for n in sh.nodes]


def test_a_replica_on_its_masters_server_is_an_error() -> None:
    d = doc(2)
    d["sites"] = [{k: v for k, v in d["sites"][0].items() if k != "latency_ms"}]
    d["servers"] = [s | {"site": "a"} for s in d["servers"] if s["name"] in ("a1", "a2")]
    d["roles"] = {"redis": {"replicas": 1, "nodes_per_server": 3}}
    spec = parse_spec(d)  # 2 servers x 3 nodes: 3 masters, a replica each on the other server
    shards = redis_layout(spec)
    assert all(sh.replicas[0].name != sh.master.name for sh in shards)
    d["servers"] = d["servers"][:1]  # one server: no other server for the replicas
    errors = check_placement(parse_spec(d))[0]
    assert any("is on its master" in e and "server" in e for e in errors), errors


def test_fewer_than_two_cores_a_node_warns() -> None:
    spec = parse_spec(doc(2, cores=3))
    assert any(w.startswith("redis: 2 nodes per server on 6 server(s) with fewer than 4 cores")
               for w in check_placement(spec)[1])
    assert not any(w.startswith("redis:") for w in check_placement(parse_spec(doc(2)))[1])


@pytest.mark.parametrize(("value", "needle"), [
    (0, "roles.redis.nodes_per_server: 0: Input should be greater than or equal to 1"),
    (33, "roles.redis.nodes_per_server: 33: Input should be less than or equal to 32"),
    ("two", "roles.redis.nodes_per_server: 'two': Input should be a valid integer"),
])
def test_bad_nodes_per_server_is_one_line_naming_the_field(value: Any, needle: str) -> None:
    d = doc(2)
    d["roles"]["redis"]["nodes_per_server"] = value
    with pytest.raises(SpecError) as err:
        parse_spec(d)
    text = str(err.value)
    assert needle in text and "\n" not in text.strip(), text


def test_each_node_has_its_port_folder_unit_and_memory_share() -> None:
    spec = parse_spec(doc(2))
    a1 = spec.server("a1")
    first, second = redis_vars(spec, a1, 0), redis_vars(spec, a1, 1)
    assert (first["port"], first["bus_port"], first["dir"]) == (6379, 16379, "/var/lib/redis")
    assert (second["port"], second["bus_port"], second["dir"]) == (6380, 16380,
                                                                  "/var/lib/redis/6380")
    assert second["pidfile"] == "/run/redis-6380/redis-server.pid"
    assert (node_unit(0), node_unit(1)) == ("redis-server", "redis@6380")
    # a1 also carries postgres: 40 % of its 1 GiB, split over 2 nodes
    assert maxmemory_mb(spec, a1) == int(1024 * 0.4 / 2)
    assert maxmemory_mb(parse_spec(doc(1)), a1) == int(1024 * 0.4)
    conf = render(template_path(redis_role.__file__, "redis.conf.j2"), **second)
    for line in ("port 6380", "cluster-announce-bus-port 16380", "dir /var/lib/redis/6380",
                 "cluster-config-file /var/lib/redis/nodes-6380.conf",
                 f"maxmemory {int(1024 * 0.4 / 2)}mb"):
        assert line in conf, line
    unit = render(template_path(redis_role.__file__, "redis@.service.j2"))
    assert "ExecStart=/usr/bin/redis-server /etc/redis/redis-%i.conf" in unit
    assert "User=redis" in unit and "ReadWritePaths=-/var/lib/redis" in unit
    # the firewall opens the extra node's client and bus ports on redis servers only
    assert ports_for(spec, a1).mesh_tcp == (6380, 16380)
    assert ports_for(spec, spec.server("a3")).mesh_tcp == ()
    assert ports_for(parse_spec(doc(1)), a1).mesh_tcp == ()


def test_the_cluster_script_and_every_reader_learn_every_node() -> None:
    from freehold.deploy.ops.probes import units_for
    from freehold.roles.monitoring.config import prometheus_config

    spec = parse_spec(doc(2))
    layout = layout_doc(spec)
    nodes = [n for sh in layout["shards"] for n in [sh["master"], *sh["replicas"]]]
    assert sorted((n["address"], n["port"]) for n in nodes) == sorted(
        (s.mesh_address, p) for s in spec.servers_with_role("redis") for p in (6379, 6380))
    assert coordinator(spec) is not None and not isinstance(coordinator(spec), RedisNode)
    assert len(node_addresses(spec)) == 12
    assert "redis@6380.service" in units_for(spec, spec.server("b2"))["redis"]
    jobs = {j["job_name"]: j for j in prometheus_config(spec)["scrape_configs"]}
    extra = jobs["redis_nodes"]
    assert extra["metrics_path"] == "/scrape"
    targets = {t for sc in extra["static_configs"] for t in sc["targets"]}
    assert targets == {f"redis://{s.mesh_address}:6380" for s in spec.servers_with_role("redis")}
    assert "redis_nodes" not in {j["job_name"] for j in
                                 prometheus_config(parse_spec(doc(1)))["scrape_configs"]}
