"""The app's dataset seeder: accounts, a power-law follow graph, posts over time and their upvotes,
by COPY.

Used by `freehold loadtest seed` (a dataset shaped like the traffic model, through a tunnel to
the cluster's database) and by benchmarks/app_hotpaths.py. It adds to what is there, and
touches no account it did not make: every account it makes is a load-test account (marked
`accounts.loadtest`, username `loadtest_<batch>_<n>` under the prefix sign-up refuses, password
hash "!" that no password matches), so a second seed never collides with the first or with real
accounts, and `freehold loadtest clean` finds them all.

    seed(dsn, accounts=100_000, posts_per_account=10)   # -> {"accounts": ..., "rows_per_s": ...}

Shape: out-degrees lognormal around `mean_follows`, followees Zipf-like (a few accounts gather
most follows), post authors weighted the same way, post times uniform over the last `days` days,
a hashtag on every post from a Zipf-distributed set, upvotes (`upvotes_per_account` on average,
lognormal) on posts drawn the same way (popular authors' posts gather most; a feed query that
reads a post's upvotes instead of looking up the reader's shows it). Posts' upvote counts are
written with the posts; the other counters (followers, following, posts, tag uses) are set
afterwards in one statement each, then ANALYZE.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

from freehold.app.ids import EPOCH_MS, RANDOM_BITS
from freehold.app.services.accounts import LOADTEST_PREFIX

# the accounts app.seed made: the mark and the reserved prefix together (an account from
# before the mark existed may carry the prefix, never the mark). A constant: no input in it.
LOADTEST_ACCOUNTS = f"(loadtest AND starts_with(username, '{LOADTEST_PREFIX}'))"

TAGS = 200
DEFAULT_MEAN_FOLLOWS = 40.0
DEFAULT_POSTS_PER_ACCOUNT = 10.0
DEFAULT_UPVOTES_PER_ACCOUNT = 20.0


def upvote_pairs(n_acc: int, post_weights: np.ndarray, mean: float, rng: np.random.Generator
                 ) -> np.ndarray:
    """(account, post) index pairs, distinct: per account a lognormal count around `mean`, posts
    drawn with `post_weights`."""
    if mean <= 0 or not len(post_weights):
        return np.empty((0, 2), dtype=np.int64)
    per = np.clip(rng.lognormal(np.log(mean) - 0.5, 1.0, n_acc).astype(np.int64), 0,
                  len(post_weights))
    acc = np.repeat(np.arange(n_acc, dtype=np.int64), per)
    post = rng.choice(len(post_weights), size=len(acc), p=post_weights / post_weights.sum())
    pairs = np.unique(acc * len(post_weights) + post)
    return np.stack([pairs // len(post_weights), pairs % len(post_weights)], axis=1)


def _graph(n: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    out = np.clip(rng.lognormal(np.log(mean) - 0.5, 1.0, n).astype(np.int64), 1, n - 1)
    total = int(out.sum())
    weights = 1.0 / np.arange(1, n + 1) ** 0.9
    weights /= weights.sum()
    followee = rng.choice(n, size=int(total * 1.15), p=weights)
    follower = np.repeat(np.arange(n), out)
    followee = followee[: len(follower)]
    pairs = follower * n + followee
    pairs = np.unique(pairs[follower != followee])
    return np.stack([pairs // n, pairs % n], axis=1)


def follow_graph(n: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """(follower, followee) index pairs: out-degree lognormal around `mean`, followees Zipf-like.
    Popular accounts drawn twice by one follower are de-duplicated, so a first draw sets how much
    to draw again to land near `mean`."""
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    state = rng.bit_generator.state
    got = len(_graph(n, mean, rng)) / n
    rng.bit_generator.state = state
    return _graph(n, mean * mean / max(got, 1.0), rng)


def binary_copy(*cols: np.ndarray) -> bytes:
    """PostgreSQL binary COPY data for rows of bigint columns (built by numpy, no Python loop)."""
    n = len(cols[0])
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i in range(len(cols)):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">i8")]
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["n"] = len(cols)
    for i, c in enumerate(cols):
        rows[f"l{i}"] = 8
        rows[f"v{i}"] = c
    return (b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") * 2 + rows.tobytes()
            + (-1).to_bytes(2, "big", signed=True))


async def _without_fk_triggers(conn: asyncpg.Connection) -> bool:
    """Skip foreign-key triggers during COPY when allowed (superuser); the rows are written in
    an order that satisfies them either way."""
    try:
        await conn.execute("SET session_replication_role = replica")
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False


# a lost connection (the primary moved, the route dropped the session, the tunnel broke) is
# retried: the rows go in one transaction, so a lost one wrote nothing; before writing again the
# batch is looked up, in case the commit went through and only its answer was lost
ATTEMPTS = 4
LOST = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
        asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError,
        asyncpg.ReadOnlySQLTransactionError)


def quiet(_: str) -> None:
    """An `on_retry` that tells no one."""
    return None


@dataclass
class _Dataset:
    """Everything the seed writes, drawn before connecting (no transaction stays open while
    numpy works, and a retry writes the same rows)."""

    tag: str
    ids: np.ndarray
    edges: np.ndarray
    pids: np.ndarray
    authors: np.ndarray
    tags: np.ndarray
    liked: np.ndarray
    upvotes: np.ndarray
    partitions: int

    def rows(self) -> int:
        return len(self.ids) + len(self.edges) + 2 * len(self.pids) + len(self.liked)


def draw_dataset(accounts: int, *, posts_per_account: float | None = None,
                 mean_follows: float | None = None, days: float = 3.0,
                 upvotes_per_account: float | None = None, rng_seed: int = 42) -> _Dataset:
    if accounts < 2:
        raise ValueError("accounts: at least 2")
    rng = np.random.default_rng(rng_seed)
    n_posts = int(accounts * (DEFAULT_POSTS_PER_ACCOUNT if posts_per_account is None
                              else posts_per_account))
    mean = min(DEFAULT_MEAN_FOLLOWS if mean_follows is None else mean_follows, accounts - 1)
    # ids from fresh entropy (the shape stays reproducible): a second seed adds new accounts
    ids = np.random.default_rng().choice(2**62, size=accounts, replace=False).astype(
        np.int64) + 1
    edges = follow_graph(accounts, mean, rng)
    ms_now = int(time.time() * 1000)
    times = np.sort(rng.integers(ms_now - int(days * 86400_000), ms_now - 60_000,
                                 max(n_posts, 1)))[:n_posts]
    pids = ((times - EPOCH_MS) << RANDOM_BITS) | rng.integers(0, 1 << RANDOM_BITS, n_posts)
    w = 1.0 / np.arange(1, accounts + 1) ** 0.5
    authors = rng.choice(accounts, size=n_posts, p=w / w.sum())
    tw = 1.0 / np.arange(1, TAGS + 1)
    tags = rng.choice(TAGS, size=n_posts, p=tw / tw.sum())
    liked = upvote_pairs(accounts, w[authors], DEFAULT_UPVOTES_PER_ACCOUNT
                         if upvotes_per_account is None else upvotes_per_account, rng)
    return _Dataset(tag=LOADTEST_PREFIX + secrets.token_hex(3), ids=ids, edges=edges,
                    pids=pids, authors=authors, tags=tags, liked=liked,
                    upvotes=np.bincount(liked[:, 1], minlength=n_posts),
                    partitions=int(days // 28) + 2)


async def _written(conn: asyncpg.Connection, d: _Dataset) -> bool:
    """Whether the batch's transaction committed (its accounts are there)."""
    n = await conn.fetchval("SELECT count(*) FROM accounts WHERE loadtest"
                            " AND starts_with(username, $1)", d.tag + "_")
    return int(n) == len(d.ids)


async def _write(conn: asyncpg.Connection, d: _Dataset) -> bool:
    """The batch's rows in one transaction; whether FK triggers were skipped."""
    fast = await _without_fk_triggers(conn)
    now = datetime.now(UTC)
    ids, pids = d.ids, d.pids
    async with conn.transaction():
        await conn.copy_records_to_table(
            "accounts", columns=["id", "username", "email", "password_hash", "display_name",
                                 "last_active_at", "loadtest"],
            records=[(int(a), f"{d.tag}_{i}", f"{d.tag}_{i}@loadtest.invalid", "!", f"User {i}",
                      now, True) for i, a in enumerate(ids)])
        await conn.copy_to_table(
            "follows", columns=["follower_id", "followee_id"], format="binary",
            source=io.BytesIO(binary_copy(ids[d.edges[:, 0]], ids[d.edges[:, 1]])))
        await conn.execute("SELECT freehold_ensure_post_partitions($1, 1)", d.partitions)
        await conn.copy_records_to_table(
            "posts", columns=["id", "author_id", "body", "upvotes_count"],
            records=((int(p), int(ids[a]), f"post {k} of the seed #topic{t}", int(u))
                     for k, (p, a, t, u) in enumerate(zip(pids, d.authors, d.tags, d.upvotes,
                                                          strict=True))))
        await conn.copy_to_table(
            "upvotes", columns=["account_id", "post_id"], format="binary",
            source=io.BytesIO(binary_copy(ids[d.liked[:, 0]], pids[d.liked[:, 1]])))
        await conn.copy_records_to_table(
            "post_tags", columns=["tag", "post_id"],
            records=((f"topic{t}", int(p)) for p, t in zip(pids, d.tags, strict=True)))
    if fast:
        await conn.execute("SET session_replication_role = origin")
    return fast


async def seed_dataset(dsn: str, accounts: int, *, posts_per_account: float | None = None,
                       mean_follows: float | None = None, days: float = 3.0,
                       upvotes_per_account: float | None = None,
                       rng_seed: int = 42, attempts: int = ATTEMPTS,
                       on_retry: Callable[[str], None] = quiet) -> dict[str, Any]:
    """Add `accounts` accounts, their follows, posts and upvotes; return counts, seconds and
    rows/s. A connection lost on the way is retried (`attempts` in all, `on_retry` told why);
    the batch is written once."""
    t0 = time.perf_counter()
    d = draw_dataset(accounts, posts_per_account=posts_per_account, mean_follows=mean_follows,
                     days=days, upvotes_per_account=upvotes_per_account, rng_seed=rng_seed)
    batch_ids = d.ids.tolist()
    fast, retries = False, 0
    for attempt in range(1, attempts + 1):
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, timeout=30)
            if attempt == 1 or not await _written(conn, d):
                fast = await _write(conn, d)
            await _counters(conn, batch_ids)
            await conn.execute("ANALYZE accounts, follows, posts, post_tags, tags, upvotes")
            max_followers = int(await conn.fetchval(
                "SELECT coalesce(max(followers_count), 0) FROM accounts WHERE id = ANY($1)",
                batch_ids))
            break
        except LOST as exc:
            if attempt == attempts:
                raise
            retries += 1
            wait = 2.0 * 2 ** (attempt - 1)
            on_retry(f"the connection to the database was lost ({type(exc).__name__}: "
                     f"{str(exc).strip()[:120]}); nothing half-written — trying again in "
                     f"{wait:.0f} s ({attempt + 1}/{attempts})")
            await asyncio.sleep(wait)
        finally:
            if conn is not None and not conn.is_closed():
                try:
                    await conn.close(timeout=5)
                except LOST:
                    conn.terminate()
    seconds = time.perf_counter() - t0
    return {"accounts": accounts, "follows": len(d.edges), "posts": len(d.pids),
            "upvotes": len(d.liked),
            "batch": d.tag, "seconds": round(seconds, 2),
            "rows_per_s": round(d.rows() / seconds) if seconds > 0 else 0,
            "mean_follows": round(len(d.edges) / accounts, 1), "max_followers": max_followers,
            "fk_triggers": "skipped (superuser)" if fast else "checked", "retries": retries}


async def _counters(conn: asyncpg.Connection, batch: list[int]) -> None:
    """followers/following/posts counts of the new accounts' graph, and tag uses."""
    await conn.execute(
        "UPDATE accounts a SET followers_count = c.n FROM (SELECT followee_id, count(*) n"
        " FROM follows WHERE followee_id = ANY($1) GROUP BY followee_id) c"
        " WHERE a.id = c.followee_id", batch)
    await conn.execute(
        "UPDATE accounts a SET following_count = c.n FROM (SELECT follower_id, count(*) n"
        " FROM follows WHERE follower_id = ANY($1) GROUP BY follower_id) c"
        " WHERE a.id = c.follower_id", batch)
    await conn.execute(
        "UPDATE accounts a SET posts_count = c.n FROM (SELECT author_id, count(*) n"
        " FROM posts WHERE author_id = ANY($1) GROUP BY author_id) c"
        " WHERE a.id = c.author_id", batch)
    await conn.execute(
        "INSERT INTO tags (tag, uses) SELECT tag, count(*) FROM post_tags GROUP BY tag"
        " ON CONFLICT (tag) DO UPDATE SET uses = EXCLUDED.uses, last_used_at = now()")


def seed(dsn: str, accounts: int, posts_per_account: float | None = None,
         seed: int = 42, on_retry: Callable[[str], None] = quiet) -> dict[str, Any]:
    """Synchronous entry point (`freehold loadtest seed`)."""
    return asyncio.run(seed_dataset(dsn, accounts, posts_per_account=posts_per_account,
                                    rng_seed=seed, on_retry=on_retry))
