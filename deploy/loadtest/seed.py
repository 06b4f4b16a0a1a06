"""`freehold loadtest seed`: the dataset (app.seed, COPY) and the load-test roster.

The dataset itself — accounts, a power-law follow graph, posts spread over time — is made by
`app.seed` (the app's own COPY-based seeder, shared with the app benchmark). This module adds what
only the load test needs, also through the database:
- members: a sample of accounts the simulated users act as, each given the roster password
  (one argon2 hash computed once) and a fresh session (COPY into `sessions`), marked active;
- the popularity rankings the users pick from with Zipf skew (accounts by followers, posts by
  engagement, tags by use), written with the tokens to the roster JSON.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from argon2 import PasswordHasher

from loadgen.roster import Roster

ROSTER_PASSWORD = "loadtest-password-1"
MEMBERS_MAX = 20_000
POPULAR_MAX = 20_000
POSTS_MAX = 20_000
TAGS_MAX = 500


class SeedError(RuntimeError):
    """Seeding could not run; the message says why and what to do."""


@dataclass
class SeedReport:
    accounts: int
    follows: int
    posts: int
    seconds: float
    rows_per_s: float
    members: int
    roster: Path
    app_seed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"accounts": self.accounts, "follows": self.follows, "posts": self.posts,
                "seconds": round(self.seconds, 2), "rows_per_s": round(self.rows_per_s),
                "members": self.members, "roster": str(self.roster),
                "app_seed": self.app_seed}


def run_app_seed(dsn: str, accounts: int, *, posts_per_account: float | None = None,
                 seed: int = 1) -> dict[str, Any]:
    """The dataset through app.seed (COPY); what it reports (counts, seconds, rows/s)."""
    import asyncpg

    from app.seed import seed as app_seed

    try:
        return app_seed(dsn, accounts, posts_per_account=posts_per_account, seed=seed)
    except (OSError, asyncpg.PostgresError) as exc:
        raise SeedError(f"seeding through {dsn.split('@')[-1]} failed: "
                        f"{type(exc).__name__}: {exc}") from exc


def _counts(cur: psycopg.Cursor[Any]) -> tuple[int, int, int]:
    cur.execute("SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM follows),"
                " (SELECT count(*) FROM posts)")
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def build_roster(dsn: str, target: str, out: Path, *, members: int = MEMBERS_MAX,
                 session_days: int = 30, rng_seed: int | None = None) -> Roster:
    """Pick members, give them the roster password and sessions, rank what is popular."""
    hasher = PasswordHasher()
    phash = hasher.hash(ROSTER_PASSWORD)
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        accounts, _, posts = _counts(cur)
        if accounts < 2:
            raise SeedError(f"{target}: only {accounts} accounts in the database — seed with "
                            "--accounts >= 10")
        n = min(members, accounts)
        if rng_seed is not None:
            cur.execute("SELECT setseed(%s)", (((rng_seed % 1000) / 1000.0),))
        # members: accounts with feeds to read (they follow someone), sampled at random
        cur.execute("SELECT id, username FROM accounts WHERE suspended_at IS NULL"
                    " ORDER BY (following_count > 0) DESC, random() LIMIT %s", (n,))
        chosen = [(int(r[0]), str(r[1])) for r in cur.fetchall()]
        ids = [c[0] for c in chosen]
        cur.execute("UPDATE accounts SET password_hash = %s, last_active_at = now()"
                    " WHERE id = ANY(%s)", (phash, ids))
        tokens = {aid: secrets.token_urlsafe(32) for aid in ids}
        expires = datetime.now(UTC) + timedelta(days=session_days)
        with cur.copy("COPY sessions (token_hash, account_id, expires_at) FROM STDIN") as cp:
            for aid, tok in tokens.items():
                cp.write_row((hashlib.sha256(tok.encode()).digest(), aid, expires))
        cur.execute("SELECT id, username FROM accounts WHERE suspended_at IS NULL"
                    " ORDER BY followers_count DESC, id LIMIT %s", (POPULAR_MAX,))
        popular = [(str(r[0]), str(r[1])) for r in cur.fetchall()]
        cur.execute("SELECT id FROM posts WHERE NOT hidden AND echo_of_id IS NULL"
                    " ORDER BY upvotes_count + replies_count + echoes_count DESC, id DESC"
                    " LIMIT %s", (POSTS_MAX,))
        hot = [str(r[0]) for r in cur.fetchall()]
        cur.execute("SELECT tag FROM tags ORDER BY uses DESC, tag LIMIT %s", (TAGS_MAX,))
        tags = [str(r[0]) for r in cur.fetchall()]
        conn.commit()
    roster = Roster(target=target, password=ROSTER_PASSWORD,
                    members=[(str(a), u, tokens[a]) for a, u in chosen], popular=popular,
                    posts=hot, tags=tags, accounts_total=accounts, posts_total=posts,
                    created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    roster.save(out)
    return roster


def seed(dsn: str, target: str, accounts: int, roster_path: Path, *,
         members: int = MEMBERS_MAX, posts_per_account: float | None = None,
         skip_dataset: bool = False) -> SeedReport:
    """Seed the dataset through app.seed (unless `skip_dataset`), then write the roster."""
    t0 = time.monotonic()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        before = _counts(cur)
    app_report: dict[str, Any] = {}
    if not skip_dataset:
        app_report = run_app_seed(dsn, accounts, posts_per_account=posts_per_account)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        after = _counts(cur)
    seeded_s = time.monotonic() - t0
    roster = build_roster(dsn, target, roster_path, members=members)
    made = sum(after) - sum(before)
    roster.seed = {"accounts": after[0], "follows": after[1], "posts": after[2],
                   "seconds": round(seeded_s, 2)}
    roster.save(roster_path)
    total_s = time.monotonic() - t0
    return SeedReport(accounts=after[0] - before[0], follows=after[1] - before[1],
                      posts=after[2] - before[2], seconds=total_s,
                      rows_per_s=made / seeded_s if seeded_s > 0 else 0.0,
                      members=len(roster.members), roster=roster_path, app_seed=app_report)
