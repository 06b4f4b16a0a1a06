"""roles/redis with several nodes per server (`roles.redis.nodes_per_server`, issue 24): on a
lab of its own — 3 servers in 3 sites at 3 providers, 2 nodes each — `freehold deploy --roles
base,mesh,redis` builds one Redis Cluster of all 6 nodes (ports 6379 and 6380 of every server),
3 masters with every replica on another server in another site, as the spec's layout says; a
second deploy changes nothing. The lab is booted and taken down by this module (~3-4 minutes).

Its name and range: FREEHOLD_REDIS_LAB_NAME (default `redisnodes`) and FREEHOLD_REDIS_LAB_NET
(the first three octets of a /22, default 10.61.8: sites on .8, .9 and .10).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freehold.deploy.lab import Lab
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.deploy.spec.placement import redis_layout
from freehold.roles.redis.config import layout_doc, node_ports
from tests.lab.cli import LabSecrets

pytestmark = pytest.mark.lab

NAME = os.environ.get("FREEHOLD_REDIS_LAB_NAME", "redisnodes")
NET = os.environ.get("FREEHOLD_REDIS_LAB_NET", "10.61.8")
NODES_PER_SERVER = 2
SPEC = """\
name: {name}
description: roles/redis with {k} nodes per server (tests/lab/test_redis_nodes.py)
providers:
  - {{name: p1, kind: owned}}
  - {{name: p2, kind: rented}}
  - {{name: p3, kind: cloud}}
sites:
  - {{name: a, provider: p1, network: {n}.{o}.0/24, latency_ms: {{b: 10, c: 20}}}}
  - {{name: b, provider: p2, network: {n}.{o1}.0/24, latency_ms: {{c: 15}}}}
  - {{name: c, provider: p3, network: {n}.{o2}.0/24}}
lab: {{network: {n}.{o}.0/22}}
mesh: {{network: 100.122.0.0/16}}
defaults: {{ssh_user: root, ssh_port: 22, cores: 4, ram_gib: 1, disk_gib: 10}}
roles:
  redis: {{nodes_per_server: {k}, replicas: 1}}
servers:
  - {{name: {name}-a1, site: a, address: {n}.{o}.10, roles: [redis]}}
  - {{name: {name}-b1, site: b, address: {n}.{o1}.10, roles: [redis]}}
  - {{name: {name}-c1, site: c, address: {n}.{o2}.10, roles: [redis]}}
"""
AUTH = ("REDISCLI_AUTH=$(awk '/^requirepass/{print $2}' /etc/redis/freehold-auth.conf) "
        "&& export REDISCLI_AUTH && ")


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory, lab_ready: None) -> Path:
    a, b, c = NET.split(".")
    o = int(c)
    path = tmp_path_factory.mktemp("redisnodes") / f"{NAME}.yaml"
    path.write_text(textwrap.dedent(SPEC).format(name=NAME, k=NODES_PER_SERVER, n=f"{a}.{b}",
                                                 o=o, o1=o + 1, o2=o + 2))
    return path


@pytest.fixture(scope="module")
def spec(spec_path: Path) -> ClusterSpec:
    return load_spec(spec_path)


@pytest.fixture(scope="module")
def lab(spec_path: Path) -> Iterator[Lab]:
    lab = Lab.from_spec(spec_path)
    lab.down()  # what a run killed midway left
    lab.up(timeout=180)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def secrets(lab: Lab) -> LabSecrets:
    return LabSecrets.of(lab)


def deploy(spec_path: Path, secrets: LabSecrets) -> dict[str, Any]:
    from freehold.deploy.provision.drill import deploy_subprocess

    code, doc = deploy_subprocess(spec_path, secrets.path, secrets.key,
                                  ["--roles", "base,mesh,redis"], timeout=1500)
    assert code == 0 and doc["ok"], [r for r in doc.get("results", [])
                                      if r.get("status") in ("failed", "unreachable")]
    return doc


@pytest.fixture(scope="module")
def first_deploy(lab: Lab, spec_path: Path, secrets: LabSecrets) -> dict[str, Any]:
    return deploy(spec_path, secrets)


def cluster_nodes(lab: Lab, host: str, addr: str, port: int) -> list[dict[str, Any]]:
    out = lab.run(host, f"{AUTH}redis-cli -h {addr} -p {port} CLUSTER NODES", timeout=30,
                  check=True).stdout
    nodes = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8:
            nodes.append({"id": f[0], "address": f[1].split("@")[0], "flags": f[2].split(","),
                          "master": f[3], "slots": f[8:]})
    return nodes


def test_every_node_in_one_cluster_replicas_on_other_servers_and_sites(
        first_deploy: dict[str, Any], lab: Lab, spec: ClusterSpec) -> None:
    servers = spec.servers_with_role("redis")
    ports = node_ports(spec)
    assert ports == [6379, 6380]
    want = {f"{s.mesh_address}:{p}" for s in servers for p in ports}
    by_addr = {s.mesh_address: s for s in servers}
    for s in servers:  # every node answers and sees the whole cluster healthy
        for p in ports:
            info = lab.run(s.name, f"{AUTH}redis-cli -h {s.mesh_address} -p {p} CLUSTER INFO",
                           timeout=30, check=True).stdout
            assert "cluster_state:ok" in info, (s.name, p, info)
            assert f"cluster_known_nodes:{len(want)}" in info, (s.name, p, info)
    nodes = cluster_nodes(lab, servers[0].name, servers[0].mesh_address, ports[1])
    assert {n["address"] for n in nodes} == want
    assert all("fail" not in n["flags"] and "fail?" not in n["flags"] for n in nodes)
    masters = {n["id"]: n for n in nodes if "master" in n["flags"] and n["slots"]}
    assert len(masters) == 3
    replicas = [n for n in nodes if "slave" in n["flags"]]
    assert len(replicas) == 3 and {n["master"] for n in replicas} == set(masters)
    for n in replicas:
        mine = by_addr[n["address"].rsplit(":", 1)[0]]
        theirs = by_addr[masters[n["master"]]["address"].rsplit(":", 1)[0]]
        assert mine.name != theirs.name and mine.site != theirs.site, (n, masters[n["master"]])
    # as the spec's layout says (before any failover: the deploy just built it)
    layout = {f"{sh['master']['address']}:{sh['master']['port']}":
              {f"{r['address']}:{r['port']}" for r in sh["replicas"]}
              for sh in layout_doc(spec)["shards"]}
    got = {m["address"]: {n["address"] for n in replicas if n["master"] == i}
           for i, m in masters.items()}
    assert got == layout
    assert len(redis_layout(spec)) == 3


def test_extra_nodes_run_under_their_own_units(first_deploy: dict[str, Any], lab: Lab,
                                               spec: ClusterSpec) -> None:
    for s in spec.servers_with_role("redis"):
        r = lab.run(s.name, "systemctl is-active redis-server.service redis@6380.service "
                            "&& systemctl is-enabled redis@6380.service "
                            "&& stat -c '%U %a' /var/lib/redis/6380", timeout=30)
        assert r.returncode == 0 and r.stdout.split() == ["active", "active", "enabled",
                                                          "redis", "750"], (s.name, r.stdout)


def test_second_deploy_changes_nothing(first_deploy: dict[str, Any], spec_path: Path,
                                       secrets: LabSecrets) -> None:
    doc = deploy(spec_path, secrets)
    assert doc["changed"] == 0, [r for r in doc["results"] if r.get("changed")]
