"""The feeds' Redis writes on a real Redis Cluster (two local masters). Fan-out: one script call
per node reaches every cached feed on both, trims over-long ones, leaves missing feeds missing,
and a node that refuses the script gets its feeds by the pipeline. Rebuilds: one script call
per list, on either node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from freehold.app.devstack import Redis, start_redis_cluster
from freehold.app.redis_client import feed_key
from freehold.app.worker import fanout

CAP = 5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Redis]]:
    nodes = start_redis_cluster(Path(tmp_path_factory.mktemp("rcluster")), nodes=2)
    try:
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def run(cluster: list[Redis], body: Any) -> Any:
    async def main() -> Any:
        rc = RedisCluster(host="127.0.0.1", port=cluster[0].port, decode_responses=True)
        try:
            await rc.initialize()
            return await body(rc)
        finally:
            await rc.aclose()
    return asyncio.run(main())


def test_one_script_per_node_reaches_every_cached_feed(cluster: list[Redis]) -> None:
    cached, missing = list(range(1, 301)), list(range(1001, 1011))

    async def body(rc: Any) -> tuple[int, dict[str, int], list[Any], list[int]]:
        for a in cached:
            await rc.rpush(feed_key(a), "0")
        keys = [feed_key(a) for a in cached + missing]
        nodes: dict[str, int] = {}
        for k in keys:
            name = rc.get_node_from_key(k).name
            nodes[name] = nodes.get(name, 0) + 1
        n = await fanout.push_by_node(rc, "77", keys, CAP)
        heads = [await rc.lindex(feed_key(a), 0) for a in cached]
        gone = [await rc.exists(feed_key(a)) for a in missing]
        return n, nodes, heads, gone

    n, nodes, heads, gone = run(cluster, body)
    assert len(nodes) == 2  # the feeds lie on both masters
    assert n == len(cached) and set(heads) == {"77"} and gone == [0] * len(missing)


def test_over_long_feeds_are_trimmed(cluster: list[Redis]) -> None:
    async def body(rc: Any) -> list[int]:
        keys = [feed_key(a) for a in (2001, 2002, 2003)]
        for k in keys:
            await rc.rpush(k, "0")
        for i in range(CAP + fanout.TRIM_SLACK):  # with the sentinel: one past cap + slack
            await fanout.push_by_node(rc, str(5000 + i), keys, CAP)
        return [await rc.llen(k) for k in keys]

    assert run(cluster, body) == [CAP] * 3


def test_a_node_refusing_the_script_gets_the_pipeline(cluster: list[Redis],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(rc: Any) -> tuple[int, list[Any]]:
        real = rc.execute_command

        async def refuse(*args: Any, **kw: Any) -> Any:
            if args and args[0] == "EVAL":
                raise ResponseError("Script attempted to access a non local key")
            return await real(*args, **kw)

        monkeypatch.setattr(rc, "execute_command", refuse)
        keys = [feed_key(a) for a in range(3001, 3041)]
        for k in keys:
            await rc.rpush(k, "0")
        n = await fanout.push_by_node(rc, "88", keys, CAP)
        return n, [await rc.lindex(k, 0) for k in keys]

    n, heads = run(cluster, body)
    assert n == 40 and set(heads) == {"88"}


def test_rebuilt_lists_replace_at_once_on_every_node(cluster: list[Redis]) -> None:
    """A feed rebuilt from PostgreSQL replaces its list in one script call (one key: one slot),
    on whichever node holds it; redis-py's cluster MULTI broke on the second node."""
    from freehold.app.context import Ctx
    from freehold.app.services.feed import _replace_list
    from freehold.app.settings import Settings

    async def body(rc: Any) -> tuple[set[str], list[Any]]:
        s = Settings(redis_cluster=True, redis_url=f"redis://127.0.0.1:{cluster[0].port}/0")
        ctx = Ctx(settings=s, db=None, replica=None, redis=rc)  # type: ignore[arg-type]
        keys = [feed_key(a) for a in range(4001, 4013)]
        for k in keys:
            await rc.rpush(k, "stale")
            await _replace_list(ctx, k, list(range(1, 1502)))  # past one RPUSH batch of 1000
        got = [(await rc.llen(k), await rc.lindex(k, 0), await rc.lindex(k, -1),
                await rc.ttl(k) > 0) for k in keys]
        return {rc.get_node_from_key(k).name for k in keys}, got

    nodes, got = run(cluster, body)
    assert len(nodes) == 2
    assert set(got) == {(1502, "1", "0", True)}  # 1,501 ids then the sentinel; no "stale"


def test_coalesced_reads_span_both_nodes(cluster: list[Redis]) -> None:
    """The home feed's coalesced reads (app.batching.RedisReads) on a cluster: the callers'
    keys on both nodes in one pipeline, each caller answered in its order, an error (WRONGTYPE)
    only to the caller that sent the command."""
    from freehold.app.batching import RedisReads

    async def body(rc: Any) -> tuple[list[Any], set[str], int]:
        keys = [f"rr:{i}" for i in range(40)]
        for i, k in enumerate(keys):
            await rc.set(k, str(i))
        await rc.set("rr:str", "x")
        reads = RedisReads(rc)
        got = await asyncio.gather(
            *(reads([("get", k), ("get", keys[0])]) for k in keys),
            reads([("lrange", "rr:str", 0, -1)]), return_exceptions=True)
        nodes = {rc.get_node_from_key(k).name for k in keys}
        return list(got), nodes, reads.batches

    got, nodes, batches = run(cluster, body)
    assert len(nodes) == 2  # the keys do span both masters
    assert got[:40] == [[str(i), "0"] for i in range(40)]
    assert isinstance(got[40], ResponseError) and "WRONGTYPE" in str(got[40])
    assert batches == 1
