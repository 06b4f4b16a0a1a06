"""Fan-out on write: push each new post id onto its author's followers' home feeds.

Followers inactive for `inactive_days` are skipped (their feed is rebuilt when they return);
authors with `big_account_followers` or more followers are skipped (merged at read time).
LPUSHX only touches feeds that are cached; a list longer than the cap (+ slack) is trimmed, so
a push usually costs one command. On a single Redis a chunk of followers is pushed by one Lua
script call (one command with the chunk's keys: the worker's CPU per insert is a fraction of a
pipelined LPUSHX's); on a Redis Cluster by one script call per node, flagged to touch keys of
several slots (Redis 7), with a pipeline as the fallback.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.exceptions import RedisError

from freehold.app.context import Ctx
from freehold.app.ids import id_time_ms
from freehold.app.redis_client import FANOUT_LAG, feed_key, script
from freehold.app.worker.consumer import Entry

TRIM_SLACK = 50

FOLLOWERS_SQL = """
SELECT f.follower_id FROM follows f JOIN accounts a ON a.id = f.follower_id
WHERE f.followee_id = $1 AND f.follower_id > $2
  AND a.last_active_at > now() - make_interval(days => $3)
ORDER BY f.follower_id LIMIT $4
"""


# LPUSHX ARGV[1] onto every feed in KEYS; trim a list longer than ARGV[2] + ARGV[3] to ARGV[2].
# Returns the number of feeds the id landed in (missing feeds stay missing).
PUSH_LUA = """
local pid, cap, slack = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = 0
for _, k in ipairs(KEYS) do
  local len = redis.call('LPUSHX', k, pid)
  if len > 0 then
    n = n + 1
    if len > cap + slack then redis.call('LTRIM', k, 0, cap - 1) end
  end
end
return n
"""


# The same for a Redis Cluster node: the feeds come in ARGV[4..] (a script's declared keys must
# share one slot; these share a node), which the flag lets it touch across slots.
PUSH_NODE_LUA = """#!lua flags=allow-cross-slot-keys
local pid, cap, slack = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV do
  local len = redis.call('LPUSHX', ARGV[i], pid)
  if len > 0 then
    n = n + 1
    if len > cap + slack then redis.call('LTRIM', ARGV[i], 0, cap - 1) end
  end
end
return n
"""


async def push(ctx: Ctx, post_id: int, account_ids: list[int]) -> int:
    """LPUSHX the post onto these feeds; trim the over-long ones. Returns pushes."""
    if not account_ids:
        return 0
    cap = ctx.settings.feed_cap
    pid = str(post_id)
    keys = [feed_key(a) for a in account_ids]
    if not ctx.settings.redis_cluster:
        run = script(ctx.redis, ctx.scripts, "fanout_push", PUSH_LUA)
        return int(await run(keys=keys, args=[pid, cap, TRIM_SLACK]))
    return await push_by_node(ctx.redis, pid, keys, cap)


async def push_by_node(rc: Any, pid: str, keys: list[str], cap: int) -> int:
    """Redis Cluster: one script call per node with the feeds that node serves (by the client's
    slot map). A node that refuses it (a slot moving, a failover the map has not seen yet) gets
    its feeds by the pipeline, which follows the cluster's redirections."""
    by_node: dict[str, list[str]] = {}
    for k in keys:
        by_node.setdefault(rc.get_node_from_key(k).name, []).append(k)

    async def one(name: str, ks: list[str]) -> int:
        node = rc.get_node(node_name=name)
        if node is not None:
            try:
                return int(await rc.execute_command("EVAL", PUSH_NODE_LUA, 0, pid, cap,
                                                    TRIM_SLACK, *ks, target_nodes=node))
            except RedisError:
                pass
        return await push_pipelined(rc, pid, ks, cap)

    return sum(await asyncio.gather(*(one(n, ks) for n, ks in by_node.items())))


async def push_pipelined(r: Any, pid: str, keys: list[str], cap: int) -> int:
    """LPUSHX by a pipeline (a cluster client sends each command to its node)."""
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.lpushx(k, pid)
    lengths = await pipe.execute()
    long = [k for k, n in zip(keys, lengths, strict=True) if n and n > cap + TRIM_SLACK]
    if long:
        pipe = r.pipeline(transaction=False)
        for k in long:
            pipe.ltrim(k, 0, cap - 1)
        await pipe.execute()
    return sum(1 for n in lengths if n)


async def fanout_post(ctx: Ctx, post_id: int, author_id: int) -> int:
    """Push one post to its audience; returns the number of feeds it landed in."""
    s = ctx.settings
    row = await ctx.db.fetchrow(
        "SELECT a.followers_count, p.hidden FROM accounts a JOIN posts p ON p.author_id = a.id"
        " WHERE a.id = $1 AND p.id = $2", author_id, post_id)
    if row is None or row["hidden"]:
        return 0  # deleted (or hidden) before fan-out
    pushed = await push(ctx, post_id, [author_id])  # the author's own feed
    if row["followers_count"] >= s.big_account_followers:
        return pushed
    after = 0
    for _ in range(row["followers_count"] // max(1, s.fanout_chunk) + 10_000):
        ids = [r[0] for r in await ctx.db.fetch(
            FOLLOWERS_SQL, author_id, after, s.inactive_days, s.fanout_chunk)]
        if not ids:
            break
        pushed += await push(ctx, post_id, ids)
        after = ids[-1]
        if len(ids) < s.fanout_chunk:
            break
        if s.fanout_chunk_pause_ms:
            await asyncio.sleep(s.fanout_chunk_pause_ms / 1000)
    return pushed


async def handle(ctx: Ctx, batch: list[Entry]) -> None:
    lag = 0
    for _eid, fields in batch:
        pid, aid = int(fields["post"]), int(fields["author"])
        await fanout_post(ctx, pid, aid)
        lag = max(lag, int(time.time() * 1000) - id_time_ms(pid))
    await ctx.redis.set(FANOUT_LAG, str(lag))
    _observe(lag)


_hist: Any = None


def _observe(lag_ms: int) -> None:
    global _hist
    from prometheus_client import Histogram

    if _hist is None:
        _hist = Histogram("freehold_fanout_lag_seconds", "post created → pushed to feeds",
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
    _hist.observe(lag_ms / 1000)
