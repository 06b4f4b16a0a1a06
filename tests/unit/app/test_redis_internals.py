"""The redis-py internals app/redis_wire.py relies on, checked against the installed redis-py
(pyproject bounds it below the next major version; a new release that moves any of these
fails here, before the wire misroutes or mis-authenticates a read)."""

from __future__ import annotations

import inspect

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.crc import key_slot

from freehold.app.redis_wire import Wire


def test_a_single_servers_connection_settings() -> None:
    client = Redis.from_url("redis://who:pw@db.example:1234/3", decode_responses=True)
    kw = client.connection_pool.connection_kwargs
    assert {k: kw[k] for k in ("host", "port", "username", "password", "db",
                               "decode_responses")} == \
        {"host": "db.example", "port": 1234, "username": "who", "password": "pw", "db": 3,
         "decode_responses": True}
    assert issubclass(client.connection_pool.connection_class, Connection)
    assert issubclass(Redis.from_url("rediss://h:1/0").connection_pool.connection_class,
                      SSLConnection)


def test_a_clusters_settings_and_slot_map() -> None:
    cluster = RedisCluster(host="127.0.0.1", port=1, password="pw")  # no connection yet
    kw = cluster.get_connection_kwargs()
    assert kw["password"] == "pw" and kw["connection_class"] is Connection
    assert "socket_connect_timeout" in kw and "decode_responses" in kw
    params = list(inspect.signature(cluster.nodes_manager.get_node_from_slot).parameters)
    assert params[0] == "slot"
    assert key_slot(b"foo") == 12182  # CRC16 mod 16384, as the Redis Cluster spec gives


def test_tls_is_left_to_redis_py() -> None:
    assert Wire.for_client(Redis.from_url("rediss://h:1/0")) is None
    assert Wire.for_client(RedisCluster(host="127.0.0.1", port=1, ssl=True)) is None
    assert Wire.for_client(Redis.from_url("redis://h:1/0")) is not None
