"""`freehold loadtest seed` and `clean`: load-test accounts, the roster, and their removal.

The dataset itself — accounts, a power-law follow graph, posts spread over time — is made by
`app.seed` (the app's own COPY-based seeder, shared with the app benchmark). Every account it
makes is a load-test account: marked `accounts.loadtest`, named under the prefix sign-up refuses
(`app.seed.LOADTEST_ACCOUNTS`). This module adds what only the load test needs, and reads or
writes no other account:
- members: a sample of the load-test accounts the simulated users act as, each given this run's
  password (random, one argon2 hash computed once) and a fresh session, marked active;
- the popularity rankings the users pick from with Zipf skew (load-test accounts by followers,
  their posts by engagement, tags by use), written with the tokens to the roster JSON (0600, on
  the operator's machine: `Target.default_roster`), so the run's follows, replies, echoes and
  upvotes land on load-test accounts and posts only;
- `clean`: every load-test account deleted through the app's own deletion path
  (`app.services.accounts.purge_rows`: cascades, other accounts' counters kept right).

Against a target that is not the lab, seeding refuses unless the operator passes --production-ok.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from freehold.app.seed import LOADTEST_ACCOUNTS, quiet
from freehold.deploy.loadtest.target import Target
from freehold.loadgen.roster import Roster, RosterError

MEMBERS_MAX = 20_000
POPULAR_MAX = 20_000
POSTS_MAX = 20_000
TAGS_MAX = 500
CLEAN_BATCH = 2_000
ROSTER_ATTEMPTS = 4
NEWCOMER_SUFFIX = ".loadtest.invalid"
NEWCOMER_DOMAIN = re.compile(r"nc[0-9a-f]{16}\.loadtest\.invalid")  # no LIKE wildcard in it


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
                 seed: int = 1, on_retry: Callable[[str], None] = quiet) -> dict[str, Any]:
    """The dataset through app.seed (COPY); what it reports (counts, seconds, rows/s). A lost
    connection is retried there (`on_retry` is told); what still fails is a SeedError."""
    import asyncpg

    from freehold.app.seed import seed as app_seed

    try:
        return app_seed(dsn, accounts, posts_per_account=posts_per_account, seed=seed,
                        on_retry=on_retry)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise SeedError(f"seeding through {dsn.split('@')[-1]} failed: "
                        f"{type(exc).__name__}: {exc}") from exc


def refuse_production(target: Target, dsn: str | None, production_ok: bool) -> None:
    """SeedError unless the seed writes to the lab — a lab spec, and a --dsn (if given) on this
    machine or in the lab — or the operator said --production-ok."""
    if production_ok:
        return
    if target.spec is not None and not target.is_lab:
        raise SeedError(f"--production-ok: {target.spec_path} is not a lab spec — seeding adds "
                        "load-test accounts and data to its database; pass --production-ok to "
                        "do that on purpose")
    if dsn is None:
        return
    hosts = str(conninfo_to_dict(dsn).get("host") or "").split(",")
    lab = target.spec.lab.network if target.spec is not None else None
    for host in hosts:
        if host in ("", "localhost") or host.startswith("/") or _in_network(host, lab):
            continue
        raise SeedError(f"--production-ok: --dsn host {host} is neither this machine nor a lab "
                        "server — seeding adds load-test accounts and data to that database; "
                        "pass --production-ok to do that on purpose")


def _in_network(host: str, network: ipaddress.IPv4Network | None) -> bool:
    """`host` is a loopback address or one in `network`."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:  # a host name
        return False
    return addr.is_loopback or (network is not None and addr in network)


def _counts(cur: psycopg.Cursor[Any], where: str = "true") -> tuple[int, int, int]:
    """Accounts, follows and posts (of the accounts matching `where`, a constant predicate)."""
    cur.execute(f"SELECT (SELECT count(*) FROM accounts WHERE {where}),"
                f" (SELECT count(*) FROM follows f JOIN accounts a ON a.id = f.follower_id"
                f"  WHERE {where}),"
                f" (SELECT count(*) FROM posts p JOIN accounts a ON a.id = p.author_id"
                f"  WHERE {where})")
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def newcomer_domain(roster_path: Path) -> str:
    """The e-mail domain of the run's newcomers: the roster's, else a new random one (no person
    has an address under .invalid, and nobody can guess this one)."""
    try:
        domain = Roster.load(roster_path).newcomer_domain
    except RosterError:
        domain = ""
    return domain if NEWCOMER_DOMAIN.fullmatch(domain) else \
        f"nc{secrets.token_hex(8)}{NEWCOMER_SUFFIX}"


def build_roster(dsn: str, target: str, out: Path, *, members: int = MEMBERS_MAX,
                 session_days: int = 30, rng_seed: int | None = None,
                 on_retry: Callable[[str], None] = quiet) -> Roster:
    """Pick members among the load-test accounts, give them this run's password and sessions,
    rank what is popular among them. One transaction: a connection lost on the way wrote
    nothing and is retried (ROSTER_ATTEMPTS in all, `on_retry` told why)."""
    from freehold.app.services.passwords import hasher  # the app's parameters: no rehash at log-in

    password = secrets.token_urlsafe(24)
    phash = hasher.hash(password)
    for attempt in range(1, ROSTER_ATTEMPTS + 1):
        try:
            return _write_roster(dsn, target, out, password, phash, members=members,
                                 session_days=session_days, rng_seed=rng_seed)
        except psycopg.OperationalError as exc:
            if attempt == ROSTER_ATTEMPTS:
                raise
            wait = 2.0 * 2 ** (attempt - 1)
            on_retry(f"the connection to the database was lost while writing the roster "
                     f"({str(exc).strip().splitlines()[0][:120]}); nothing written — trying "
                     f"again in {wait:.0f} s ({attempt + 1}/{ROSTER_ATTEMPTS})")
            time.sleep(wait)
    raise AssertionError("unreachable")


def _write_roster(dsn: str, target: str, out: Path, password: str, phash: str, *,
                  members: int, session_days: int, rng_seed: int | None) -> Roster:
    with psycopg.connect(dsn, autocommit=False, connect_timeout=30) as conn, \
            conn.cursor() as cur:
        accounts, _, posts = _counts(cur, LOADTEST_ACCOUNTS)
        if accounts < 2:
            raise SeedError(f"{target}: {accounts} load-test accounts in the database — seed "
                            "them first (`freehold loadtest seed` without --roster-only)")
        n = min(members, accounts)
        if rng_seed is not None:
            cur.execute("SELECT setseed(%s)", (((rng_seed % 1000) / 1000.0),))
        # members: accounts with feeds to read (they follow someone), sampled at random
        cur.execute(f"SELECT id, username FROM accounts WHERE {LOADTEST_ACCOUNTS}"
                    " AND suspended_at IS NULL"
                    " ORDER BY (following_count > 0) DESC, random() LIMIT %s", (n,))
        chosen = [(int(r[0]), str(r[1])) for r in cur.fetchall()]
        ids = [c[0] for c in chosen]
        cur.execute(f"UPDATE accounts SET password_hash = %s, last_active_at = now()"
                    f" WHERE id = ANY(%s) AND {LOADTEST_ACCOUNTS}", (phash, ids))
        if cur.rowcount != len(ids):
            raise SeedError(f"{target}: {len(ids) - cur.rowcount} members stopped being "
                            "load-test accounts while seeding — nothing written; seed again")
        tokens = {aid: secrets.token_urlsafe(32) for aid in ids}
        expires = datetime.now(UTC) + timedelta(days=session_days)
        with cur.copy("COPY sessions (token_hash, account_id, expires_at) FROM STDIN") as cp:
            for aid, tok in tokens.items():
                cp.write_row((hashlib.sha256(tok.encode()).digest(), aid, expires))
        cur.execute(f"SELECT id, username FROM accounts WHERE {LOADTEST_ACCOUNTS}"
                    " AND suspended_at IS NULL"
                    " ORDER BY followers_count DESC, id LIMIT %s", (POPULAR_MAX,))
        popular = [(str(r[0]), str(r[1])) for r in cur.fetchall()]
        cur.execute(f"SELECT p.id FROM posts p JOIN accounts a ON a.id = p.author_id"
                    f" WHERE {LOADTEST_ACCOUNTS} AND NOT p.hidden AND p.echo_of_id IS NULL"
                    " ORDER BY p.upvotes_count + p.replies_count + p.echoes_count DESC,"
                    " p.id DESC LIMIT %s", (POSTS_MAX,))
        hot = [str(r[0]) for r in cur.fetchall()]
        cur.execute("SELECT tag FROM tags ORDER BY uses DESC, tag LIMIT %s", (TAGS_MAX,))
        tags = [str(r[0]) for r in cur.fetchall()]
        conn.commit()
    roster = Roster(target=target, password=password, newcomer_domain=newcomer_domain(out),
                    members=[(str(a), u, tokens[a]) for a, u in chosen], popular=popular,
                    posts=hot, tags=tags, accounts_total=accounts, posts_total=posts,
                    created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    roster.save(out)
    return roster


def seed(dsn: str, target: str, accounts: int, roster_path: Path, *,
         members: int = MEMBERS_MAX, posts_per_account: float | None = None,
         skip_dataset: bool = False, on_retry: Callable[[str], None] = quiet) -> SeedReport:
    """Seed the dataset through app.seed (unless `skip_dataset`), then write the roster."""
    t0 = time.monotonic()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        before = _counts(cur)
    app_report: dict[str, Any] = {}
    if not skip_dataset:
        app_report = run_app_seed(dsn, accounts, posts_per_account=posts_per_account,
                                  on_retry=on_retry)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        after = _counts(cur)
    seeded_s = time.monotonic() - t0
    roster = build_roster(dsn, target, roster_path, members=members, on_retry=on_retry)
    made = sum(after) - sum(before)
    roster.seed = {"accounts": after[0], "follows": after[1], "posts": after[2],
                   "seconds": round(seeded_s, 2)}
    roster.save(roster_path)
    total_s = time.monotonic() - t0
    return SeedReport(accounts=after[0] - before[0], follows=after[1] - before[1],
                      posts=after[2] - before[2], seconds=total_s,
                      rows_per_s=made / seeded_s if seeded_s > 0 else 0.0,
                      members=len(roster.members), roster=roster_path, app_seed=app_report)


@dataclass
class CleanReport:
    accounts: int
    follows: int
    posts: int
    media_left: int  # objects of deleted accounts left in the media store (not reachable here)
    roster: Path | None

    def to_json(self) -> dict[str, Any]:
        return {"accounts": self.accounts, "follows": self.follows, "posts": self.posts,
                "media_left": self.media_left,
                "roster": str(self.roster) if self.roster else None}


async def _purge_loadtest(dsn: str, domain: str | None) -> tuple[int, int]:
    """Delete every load-test account, and the newcomers with an address at `domain`, a batch
    per transaction; (accounts, media keys left)."""
    import asyncpg

    from freehold.app.services.accounts import purge_rows

    deleted = media = 0
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            async with conn.transaction():
                ids = [int(r["id"]) for r in await conn.fetch(
                    f"SELECT id FROM accounts WHERE {LOADTEST_ACCOUNTS} OR ($2::text IS NOT NULL"
                    " AND lower(email) LIKE '%@' || $2) ORDER BY id LIMIT $1 FOR UPDATE",
                    CLEAN_BATCH, domain)]
                if not ids:
                    return deleted, media
                keys, _ = await purge_rows(conn, ids)
            deleted += len(ids)
            media += len(keys)
    finally:
        await conn.close()


def clean(dsn: str, roster_path: Path) -> CleanReport:
    """Delete every load-test account app.seed made and the newcomers the runs of the roster
    signed up (and, by cascade, everything they wrote), no other account; remove the roster
    (its tokens and password name nothing any more)."""
    import asyncpg

    try:
        domain: str | None = Roster.load(roster_path).newcomer_domain
    except RosterError:
        domain = None
    if domain is not None and not NEWCOMER_DOMAIN.fullmatch(domain):
        domain = None  # a roster of before the newcomers had a domain of their own
    try:
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            _, follows, posts = _counts(cur, LOADTEST_ACCOUNTS)
        deleted, media = asyncio.run(_purge_loadtest(dsn, domain))
    except (OSError, asyncpg.PostgresError) as exc:
        raise SeedError(f"cleaning {dsn.split('@')[-1]} failed: "
                        f"{type(exc).__name__}: {exc}") from exc
    removed = None
    if roster_path.exists():
        roster_path.unlink()
        removed = roster_path
    return CleanReport(accounts=deleted, follows=follows, posts=posts,
                       media_left=media, roster=removed)
