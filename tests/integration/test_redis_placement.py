"""roles/redis/cluster_setup.py on a real Redis Cluster (four local nodes: two shards of a
master and a replica, with a password): after a failover the shard's master is another node than
the layout's; `check` says so and `apply`'s give-back makes the layout's node master again by a
graceful CLUSTER FAILOVER, with every key still there."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from freehold.app.devstack import Redis
from freehold.roles.redis import cluster_setup as cs

pytestmark = pytest.mark.integration


def _until(what: str, ok: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout:.0f} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = Path(tmp_path_factory.mktemp("rplace"))
    password = secrets.token_hex(12)
    auth = root / "auth.conf"
    auth.write_text(f"requirepass {password}\n")
    nodes = []
    try:
        for _ in range(4):
            nodes.append(Redis(root, cluster=True, password=password).start())
        m0, m1, r0, r1 = nodes
        c = {n.port: redis_sync.Redis(port=n.port, password=password) for n in nodes}
        c[m0.port].execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 8191)
        c[m1.port].execute_command("CLUSTER", "ADDSLOTSRANGE", 8192, 16383)
        for n in nodes[1:]:
            c[m0.port].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port, n.bus_port)
        _until("every node known", lambda: all(
            len(c[n.port].execute_command("CLUSTER", "NODES").splitlines()) == 4
            for n in nodes))
        for replica, master in ((r0, m0), (r1, m1)):
            mid = c[master.port].execute_command("CLUSTER", "MYID").decode()
            _until(f"{replica.port} learns {master.port}", lambda r=replica, m=mid:
                   m.encode() in c[r.port].execute_command("CLUSTER", "NODES"))
            c[replica.port].execute_command("CLUSTER", "REPLICATE", mid)
        layout = {"port": 6379, "shards": [
            {"index": i, "master": {"name": f"m{i}", "address": "127.0.0.1", "port": m.port},
             "replicas": [{"name": f"r{i}", "address": "127.0.0.1", "port": r.port}]}
            for i, (m, r) in enumerate(((m0, r0), (m1, r1)))]}
        cs.AUTH_FILE = str(auth)
        cs._env.clear()
        _until("the cluster in place", lambda: cs.problems(layout) == [])
        yield {"layout": layout, "nodes": nodes, "password": password, "clients": c}
    finally:
        for n in nodes:
            n.stop()


def test_a_drifted_master_is_flagged_and_given_back(shards: dict[str, Any]) -> None:
    layout, (m0, _m1, r0, _r1) = shards["layout"], shards["nodes"]
    c = shards["clients"]
    rc = redis_sync.RedisCluster(host="127.0.0.1", port=m0.port,
                                 password=shards["password"])
    try:
        keys = {f"placement:{i}": str(i) for i in range(200)}
        for k, v in keys.items():
            rc.set(k, v)
    finally:
        rc.close()
    _until("the replica in sync", lambda: c[r0.port].info("replication").get(
        "master_link_status") == "up")
    # a failover (as after the master's server was lost and came back): r0 leads shard 0
    c[r0.port].execute_command("CLUSTER", "FAILOVER")
    _until("r0 master", lambda: c[r0.port].info("replication")["role"] == "master")
    _until("the drift seen", lambda: cs.problems(layout) == [
        f"shard 0: master is 127.0.0.1:{r0.port}, the layout's is 127.0.0.1:{m0.port}"])
    assert cs.give_back_masters(layout) == [
        f"shard 0: 127.0.0.1:{r0.port} -> 127.0.0.1:{m0.port}"]
    _until("in place again", lambda: cs.problems(layout) == [])
    assert cs.give_back_masters(layout) == []  # nothing to move: no change
    rc = redis_sync.RedisCluster(host="127.0.0.1", port=m0.port,
                                 password=shards["password"])
    try:
        assert {k: (rc.get(k) or b"").decode() for k in keys} == keys
    finally:
        rc.close()
