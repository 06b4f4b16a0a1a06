"""Read pipelines on raw Redis connections, parsed by hiredis: the home feed's hot path.

redis-py's asyncio pipeline costs the app more CPU than the reads in it: per command it packs
in Python, and per reply it runs a coroutine under its own timeout (a timer scheduled and
cancelled in the event loop). On the home feed that was ~0.11 ms of app CPU per request, a
fifth of the request (py-spy, benchmarks/app_hotpaths.py). `Wire` sends a batch of read
commands as one write (packed by hiredis) on a connection of its own per Redis node and has
the replies parsed by hiredis as bytes arrive (`asyncio.Protocol`): one future and one timeout
per batch and node.

What it serves is what redis-py would answer (strings decoded as the client's
`decode_responses` says, integers, None, lists; an error reply as a `ResponseError` in its
place). It speaks to what the redis-py client is configured
for: a single Redis over TCP or a unix socket (password, user and database from the client's
own URL parsing), or a Redis Cluster, each command sent to the master of its key's slot as in
the client's slot map. Anything else is left to redis-py (`Wire.for_client` gives None: TLS),
and so is a batch that meets a cluster redirection (MOVED, ASK: the slot map is stale; the
caller sends it again through redis-py, which follows the redirection and refreshes its map).
A lost connection or a timeout fails the batch with redis-py's ConnectionError or TimeoutError
after one more try on a new connection (reads only: sending them twice is harmless).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]  # ("lrange", "feed:{1}", 0, 49): a command (redis-py's method name)
REDIRECTS = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")


class Redirected(Exception):
    """A cluster node answered a command with a redirection: the slot map is stale."""


class _Protocol(asyncio.Protocol):
    """One connection: batches written whole, replies parsed by hiredis, one batch at a time
    (the caller's lock)."""

    def __init__(self, encoding: str | None) -> None:
        self.reader = (hiredis.Reader(encoding=encoding, replyError=ResponseError) if encoding
                       else hiredis.Reader(replyError=ResponseError))
        self.transport: asyncio.Transport | None = None
        self.want = 0
        self.got: list[Any] = []
        self.done: asyncio.Future[list[Any]] | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        got, gets = self.got, self.reader.gets
        try:
            self.reader.feed(data)
            while len(got) < self.want:
                reply = gets()
                if reply is False:
                    return
                got.append(reply)
        except (hiredis.ProtocolError, UnicodeDecodeError) as exc:  # a reply it cannot read
            self._fail(RedisConnectionError(f"unreadable reply from Redis: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - a bug: to the caller as itself (a 500)
            # (left to asyncio, it would close the connection and the batch would fail as
            # "Redis closed the connection": a bug answered as Redis unavailable, a 503)
            self._fail(exc)
            return
        if self.done is not None and not self.done.done():
            self.done.set_result(got)

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        if self.transport is not None:
            self.transport.close()  # the rest of the stream cannot be trusted
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"Redis closed the connection: {exc or 'EOF'}")
        if self.done is not None and not self.done.done():
            self.done.set_exception(self.lost)

    async def run(self, packed: bytes, n: int, timeout: float) -> list[Any]:
        if self.lost is not None or self.transport is None:
            raise self.lost or RedisConnectionError("not connected")
        self.want, self.got = n, []
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(packed)
        try:
            async with asyncio.timeout(timeout):
                return await self.done
        except TimeoutError:
            self.close()  # replies may still come: the connection cannot be used again
            raise RedisTimeoutError(f"Redis did not answer within {timeout} s") from None
        finally:
            self.done = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.lost = self.lost or RedisConnectionError("closed")


class _Node:
    """A connection to one Redis server, opened on first use and again after it was lost."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.timeout = float(kwargs.get("socket_timeout") or 5)
        self.proto: _Protocol | None = None
        self.lock = asyncio.Lock()

    async def _connect(self) -> _Protocol:
        kw, loop = self.kwargs, asyncio.get_running_loop()
        encoding = kw.get("encoding", "utf-8") if kw.get("decode_responses") else None

        def make() -> _Protocol:
            return _Protocol(encoding)

        timeout = float(kw.get("socket_connect_timeout") or self.timeout)
        try:
            async with asyncio.timeout(timeout):
                if kw.get("path"):
                    _, proto = await loop.create_unix_connection(make, kw["path"])
                else:
                    _, proto = await loop.create_connection(make, kw.get("host", "localhost"),
                                                            int(kw.get("port", 6379)))
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        hello: list[Command] = []
        if kw.get("password"):
            hello.append(("AUTH", *filter(None, (kw.get("username"), kw["password"]))))
        if int(kw.get("db") or 0):
            hello.append(("SELECT", int(kw["db"])))
        if hello:
            for reply in await proto.run(b"".join(map(hiredis.pack_command, hello)),
                                         len(hello), timeout):
                if isinstance(reply, ResponseError):
                    proto.close()
                    raise RedisConnectionError(f"Redis refused the connection: {reply}")
        return proto

    async def run(self, cmds: Sequence[Command]) -> list[Any]:
        if not cmds:
            return []
        packed = b"".join(map(hiredis.pack_command, cmds))
        async with self.lock:
            for attempt in range(2):  # one more try on a new connection
                if self.proto is None or self.proto.lost is not None:
                    self.proto = await self._connect()
                try:
                    return await self.proto.run(packed, len(cmds), self.timeout)
                except (RedisConnectionError, RedisTimeoutError):
                    self.proto.close()
                    self.proto = None
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.proto is not None:
            self.proto.close()
            self.proto = None


class Wire:
    """Read commands on raw connections to the Redis (or Redis Cluster) that `client`, a
    redis-py asyncio client, talks to (see the module doc)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.nodes: dict[tuple[str, int] | None, _Node] = {}
        if not self.cluster:
            self.nodes[None] = _Node(client.connection_pool.connection_kwargs)

    @classmethod
    def for_client(cls, client: Any) -> Wire | None:
        """A Wire for this client, or None when it speaks TLS (left to redis-py)."""
        if isinstance(client, RedisCluster):
            kind = client.get_connection_kwargs().get("connection_class", Connection)
        else:
            kind = client.connection_pool.connection_class
        return None if issubclass(kind, SSLConnection) else cls(client)

    async def execute(self, cmds: Sequence[Command]) -> list[Any]:
        """The replies to `cmds`, in order; an error reply is a ResponseError in its place.
        Raises Redirected when a cluster node redirected a command."""
        if not self.cluster:
            return await self.nodes[None].run(cmds)
        by_node: dict[tuple[str, int], list[int]] = {}
        for k, c in enumerate(cmds):
            key = c[1]
            node = self.client.nodes_manager.get_node_from_slot(
                key_slot(key.encode() if isinstance(key, str) else key))
            by_node.setdefault((node.host, node.port), []).append(k)
        out: list[Any] = [None] * len(cmds)

        async def one(addr: tuple[str, int], ks: list[int]) -> None:
            node = self.nodes.get(addr)
            if node is None:
                kw = {**self.client.get_connection_kwargs(), "host": addr[0], "port": addr[1]}
                node = self.nodes[addr] = _Node(kw)
            for k, reply in zip(ks, await node.run([cmds[k] for k in ks]), strict=True):
                if isinstance(reply, ResponseError) and str(reply).startswith(REDIRECTS):
                    raise Redirected(str(reply))
                out[k] = reply

        await asyncio.gather(*(one(a, ks) for a, ks in by_node.items()))
        return out

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
        if self.cluster:
            self.nodes.clear()
