"""app.redis_wire against real Redis servers: the same answers as redis-py's pipeline, on a
single Redis (password, database) and on a two-master Redis Cluster; a refused password, a
killed connection, a paused server; a stale slot map left to redis-py (app.batching)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from freehold.app.batching import RedisReads
from freehold.app.devstack import Redis, start_redis_cluster
from freehold.app.redis_client import feed_key
from freehold.app.redis_wire import Redirected, Wire

pytestmark = pytest.mark.integration

CMDS: list[tuple[Any, ...]] = [
    ("get", "k:str"), ("get", "k:missing"), ("exists", "k:str"), ("exists", "k:missing"),
    ("lrange", "k:list", 0, 2), ("lrange", "k:list", 2, 99), ("lrange", "k:missing", 0, 9),
    ("lrange", "k:str", 0, 1),  # wrong type: an error reply in its place
    ("get", "k:ünï"),
]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    rd = Redis(Path(tmp_path_factory.mktemp("wire")), password="s3cret w0rd").start()
    try:
        yield rd
    finally:
        rd.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Redis]]:
    nodes = start_redis_cluster(Path(tmp_path_factory.mktemp("wirecluster")), nodes=2)
    try:
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def run(make: Callable[[], Any], body: Callable[[Any], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = make()
        if isinstance(client, RedisCluster):
            await client.initialize()
        try:
            return await body(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


async def fill(r: Any, prefix: str = "") -> None:
    await r.set(prefix + "k:str", "värde 1")
    await r.set(prefix + "k:ünï", "ünïcödé")
    await r.rpush(prefix + "k:list", *map(str, range(10, 0, -1)), "0")


async def by_redis_py(r: Any, cmds: list[tuple[Any, ...]]) -> list[Any]:
    pipe = r.pipeline(transaction=False)
    for c in cmds:
        getattr(pipe, c[0])(*c[1:])
    return list(await pipe.execute(raise_on_error=False))


def same(a: list[Any], b: list[Any]) -> bool:
    """Equal answers; error replies equal by class and text."""
    return len(a) == len(b) and all(
        (type(x) is type(y) and str(x) == str(y)) if isinstance(x, Exception) else x == y
        for x, y in zip(a, b, strict=True))


def test_single_redis_answers_as_redis_py(secured: Redis) -> None:
    url = secured.url.replace("/0", "/3")  # a database other than 0: SELECT on connect

    async def body(r: Any) -> None:
        await fill(r)
        wire = Wire.for_client(r)
        assert wire is not None
        try:
            got = await wire.execute(CMDS)
            assert same(got, await by_redis_py(r, CMDS))
            assert got[0] == "värde 1" and got[1] is None and got[2] == 1
            assert got[4] == ["10", "9", "8"] and isinstance(got[7], ResponseError)
            assert await wire.execute(CMDS[:1]) == ["värde 1"]  # the connection is kept
        finally:
            wire.close()

    run(lambda: AsyncRedis.from_url(url, decode_responses=True), body)


def test_wrong_password_is_refused_clearly(secured: Redis) -> None:
    async def body(r: Any) -> None:
        wire = Wire(r)
        with pytest.raises(RedisConnectionError, match="Redis refused the connection"):
            await wire.execute([("get", "k:str")])

    run(lambda: AsyncRedis.from_url(secured.url.replace("s3cret", "wrong"),
                                    decode_responses=True), body)


def test_a_killed_connection_is_opened_again(secured: Redis) -> None:
    async def body(r: Any) -> None:
        await fill(r)
        wire = Wire(r)
        try:
            assert await wire.execute([("get", "k:str")]) == ["värde 1"]
            killed = await r.client_kill_filter(_type="normal", skipme=True)
            assert killed >= 1
            await asyncio.sleep(0.1)  # the close reaches the wire's connection
            assert await wire.execute([("exists", "k:str")]) == [1]
            # a connection that dies under a batch: the batch is sent again on a new one
            proto = wire.nodes[None].proto
            assert proto is not None and proto.transport is not None
            proto.transport.write = lambda _: proto.transport.abort()  # type: ignore
            assert await wire.execute([("get", "k:str")]) == ["värde 1"]
            assert wire.nodes[None].proto is not proto
        finally:
            wire.close()

    run(lambda: AsyncRedis.from_url(secured.url, decode_responses=True), body)


def test_a_paused_server_times_out(secured: Redis) -> None:
    async def body(r: Any) -> None:
        wire = Wire(r)
        try:
            assert await wire.execute([("get", "k:str")]) == ["värde 1"]
            await r.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            with pytest.raises(RedisTimeoutError, match="did not answer within 0.3 s"):
                await wire.execute([("get", "k:str")])
            await asyncio.sleep(1.6)
            assert await wire.execute([("get", "k:str")]) == ["värde 1"]
        finally:
            wire.close()

    run(lambda: AsyncRedis.from_url(secured.url, decode_responses=True, socket_timeout=0.3),
        body)


def test_an_undecodable_reply_fails_the_batch_clearly(secured: Redis) -> None:
    async def body(r: Any) -> None:
        await r.set("k:latin1", "é".encode("latin-1"))  # not UTF-8
        wire = Wire(r)
        try:
            with pytest.raises(RedisConnectionError, match="unreadable reply from Redis"):
                await wire.execute([("get", "k:latin1")])
            assert await wire.execute([("exists", "k:latin1")]) == [1]  # a new connection
        finally:
            wire.close()
        raw = Wire(AsyncRedis.from_url(secured.url))  # no decode_responses: bytes, as redis-py
        try:
            assert await raw.execute([("get", "k:latin1")]) == ["é".encode("latin-1")]
        finally:
            raw.close()

    run(lambda: AsyncRedis.from_url(secured.url, decode_responses=True), body)


def test_tls_is_left_to_redis_py() -> None:
    r = AsyncRedis.from_url("rediss://127.0.0.1:1/0", decode_responses=True)
    assert Wire.for_client(r) is None
    rc = RedisCluster(host="127.0.0.1", port=1, ssl=True, decode_responses=True)
    assert Wire.for_client(rc) is None
    reads = RedisReads(r)
    assert reads.wire is None


def test_cluster_answers_as_redis_py_from_both_nodes(cluster: list[Redis]) -> None:
    keys = [feed_key(a) for a in range(1, 41)]
    cmds = [c for k in keys for c in (("lrange", k, 0, 2), ("exists", k), ("get", k))]

    async def body(rc: Any) -> None:
        for n, k in enumerate(keys):
            await rc.rpush(k, str(n), "0")
        nodes = {rc.get_node_from_key(k).name for k in keys}
        assert len(nodes) == 2  # the keys live on both masters
        wire = Wire(rc)
        try:
            got = await wire.execute(cmds)
            assert same(got, await by_redis_py(rc, cmds))
            assert got[:2] == [["0", "0"], 1] and isinstance(got[2], ResponseError)
            assert len(wire.nodes) == 2
        finally:
            wire.close()

    run(lambda: RedisCluster(host="127.0.0.1", port=cluster[0].port, decode_responses=True),
        body)


def test_stale_slot_map_is_left_to_redis_py(cluster: list[Redis]) -> None:
    """A command sent to the wrong master is redirected: the wire gives up the batch
    (Redirected) and RedisReads sends it through redis-py, which follows the redirection."""
    key = feed_key(7)

    async def body(rc: Any) -> None:
        await rc.delete(key)
        await rc.rpush(key, "70", "0")
        slot = rc.keyslot(key)
        right = rc.nodes_manager.slots_cache[slot][0]
        wrong = next(n for n in rc.get_primaries() if n.name != right.name)
        wire = Wire(rc)
        rc.nodes_manager.slots_cache[slot] = [wrong]  # as if the slot had moved
        try:
            with pytest.raises(Redirected, match="MOVED"):
                await wire.execute([("lrange", key, 0, 9)])
        finally:
            wire.close()
        reads = RedisReads(rc)
        try:
            rc.nodes_manager.slots_cache[slot] = [wrong]
            assert await reads([("lrange", key, 0, 9), ("exists", key)]) == [["70", "0"], 1]
        finally:
            reads.close()

    run(lambda: RedisCluster(host="127.0.0.1", port=cluster[0].port, decode_responses=True),
        body)


def test_reads_use_the_wire_not_the_client_pipeline(secured: Redis) -> None:
    async def body(r: Any) -> None:
        await fill(r, "rr:")
        reads = RedisReads(r)

        def no_pipeline(*_: Any, **__: Any) -> Any:
            raise AssertionError("redis-py's pipeline was used")

        r.pipeline = no_pipeline
        try:
            a, b = await asyncio.gather(reads([("get", "rr:k:str"), ("exists", "rr:k:list")]),
                                        reads([("exists", "rr:k:list"), ("get", "nope")]))
            assert a == ["värde 1", 1] and b == [1, None]
            assert reads.batches == 1  # both callers in one batch
        finally:
            reads.close()

    run(lambda: AsyncRedis.from_url(secured.url, decode_responses=True), body)
