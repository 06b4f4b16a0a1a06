"""`freehold loadtest seed` and `clean` never touch an account they did not make (issue 18.1).

A database of its own (real PostgreSQL and Redis): an admin and a normal account made through the
app's own services, each with a session, a post and a follow, plus an account named under the
load-test prefix from before the prefix was reserved (unmarked). The seeder (a URL target, so
only the database is reached) must leave every column of theirs, their sessions, posts and
follows as they were; `clean` must delete exactly the accounts it seeded.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from freehold.app.context import close_ctx, open_ctx
from freehold.app.db import migrate
from freehold.app.devstack import Postgres, Redis
from freehold.app.ids import new_id
from freehold.app.services.accounts import LOADTEST_PREFIX
from freehold.app.settings import Settings
from tests.integration.loadtest.conftest import freehold

URL = "http://127.0.0.1:9"  # a URL target: seed and clean reach only --dsn


@dataclass
class Db:
    dsn: str
    settings: Settings
    people: dict[str, int]  # username -> id of the accounts the seeder did not make


async def _people(settings: Settings) -> dict[str, int]:
    from freehold.app.services import accounts, auth, posts, social

    ctx = await open_ctx(settings)
    try:
        ids: dict[str, int] = {}
        for name in ("site_admin", "plain_person", "nc_person"):
            row = await accounts.signup(ctx, name, f"{name}@example.org", "a real password 1")
            ids[name] = int(row["id"])
            await auth.create_session(ctx, ids[name])
            await posts.create_post(ctx, ids[name], f"hello from {name} #real")
        await social.follow(ctx, ids["plain_person"], ids["site_admin"])
        legacy = f"{LOADTEST_PREFIX}legacy"  # made before sign-up refused the prefix
        ids[legacy] = new_id()
        await ctx.db.execute("INSERT INTO accounts (id, username, email, password_hash)"
                             " VALUES ($1, $2, $3, 'x')", ids[legacy], legacy,
                             f"{legacy}@example.org")
        return ids
    finally:
        await close_ctx(ctx)


@pytest.fixture(scope="module")
def db(pg_server: Postgres, redis_server: Redis) -> Iterator[Db]:
    pg_server.psql("CREATE DATABASE freehold_lt_safety")
    dsn = pg_server.dsn_for("freehold_lt_safety")
    migrate(dsn)
    settings = Settings(database_url=dsn, redis_url=redis_server.url.rsplit("/", 1)[0] + "/8",
                        s3_endpoint="", bootstrap_admins="site_admin", rl_signup_per_ip=0,
                        rl_write_per_account=0, rl_write_per_ip=0, db_pool_min=1, db_pool_max=4)
    people = asyncio.run(_people(settings))
    yield Db(dsn=dsn, settings=settings, people=people)


def snapshot(dsn: str, ids: list[int]) -> dict[str, Any]:
    """Every column of the accounts, their sessions, posts and follows."""
    with psycopg.connect(dsn) as conn:
        def rows(sql: str) -> list[Any]:
            return [r[0] for r in conn.execute(sql, {"i": ids}).fetchall()]

        return {
            "accounts": rows("SELECT to_jsonb(a) FROM accounts a WHERE id = ANY(%(i)s)"
                             " ORDER BY id"),
            "sessions": rows("SELECT to_jsonb(s) - 'token_hash' || jsonb_build_object('t',"
                             " encode(token_hash, 'hex')) FROM sessions s"
                             " WHERE account_id = ANY(%(i)s) ORDER BY token_hash"),
            "posts": rows("SELECT to_jsonb(p) FROM posts p WHERE author_id = ANY(%(i)s)"
                          " ORDER BY id"),
            "follows": rows("SELECT to_jsonb(f) FROM follows f WHERE follower_id = ANY(%(i)s)"
                            " OR followee_id = ANY(%(i)s) ORDER BY 1"),
        }


def seeded(dsn: str) -> list[tuple[int, str, bool]]:
    with psycopg.connect(dsn) as conn:
        return [(int(a), str(u), bool(m)) for a, u, m in conn.execute(
            "SELECT id, username, loadtest FROM accounts WHERE loadtest ORDER BY id").fetchall()]


def count_accounts(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT count(*) FROM accounts").fetchone()[0])  # type: ignore


def test_seed_leaves_other_accounts_alone(db: Db, tmp_path: Path) -> None:
    ids = list(db.people.values())
    before = snapshot(db.dsn, ids)
    assert len(before["sessions"]) == 3 and len(before["follows"]) == 1
    roster_path = tmp_path / "operator" / "roster.json"
    r = freehold("loadtest", "seed", URL, "--accounts", "40", "--dsn", db.dsn,
                 "--roster", str(roster_path), "--json")
    assert r.returncode == 0, r.stderr
    assert snapshot(db.dsn, ids) == before
    assert json.loads(r.stdout)["accounts"] == 40
    made = seeded(db.dsn)
    assert all(u.startswith(LOADTEST_PREFIX) for _, u, _ in made)
    roster = json.loads(roster_path.read_text())
    assert stat.S_IMODE(roster_path.stat().st_mode) == 0o600
    own = {str(a) for a, _, _ in made}  # every load-test account, none other
    assert {m[0] for m in roster["members"]} == own
    assert {p[0] for p in roster["popular"]} <= own  # the run follows load-test accounts only
    with psycopg.connect(db.dsn) as conn:
        authors = {str(a) for (a,) in conn.execute(
            "SELECT DISTINCT author_id FROM posts WHERE id = ANY(%s)",
            ([int(p) for p in roster["posts"]],)).fetchall()}
    assert roster["posts"] and authors <= own
    first = roster["password"]
    assert len(first) >= 24 and first not in r.stdout + r.stderr  # never printed


def test_roster_only_leaves_other_accounts_alone(db: Db, tmp_path: Path) -> None:
    roster_path = tmp_path / "roster.json"
    r = freehold("loadtest", "seed", URL, "--accounts", "10", "--dsn", db.dsn,
                 "--roster", str(roster_path))
    assert r.returncode == 0, r.stderr
    first = json.loads(roster_path.read_text())
    ids = list(db.people.values())
    before, accounts = snapshot(db.dsn, ids), count_accounts(db.dsn)
    r = freehold("loadtest", "seed", URL, "--accounts", "40", "--dsn", db.dsn,
                 "--roster-only", "--roster", str(roster_path))
    assert r.returncode == 0, r.stderr
    assert snapshot(db.dsn, ids) == before
    assert count_accounts(db.dsn) == accounts  # --roster-only makes no accounts
    again = json.loads(roster_path.read_text())
    assert again["password"] != first["password"]
    assert again["password"] not in r.stdout + r.stderr
    assert again["newcomer_domain"] == first["newcomer_domain"]  # past newcomers stay findable
    assert {m[0] for m in again["members"]} == {str(a) for a, _, _ in seeded(db.dsn)}


def test_non_lab_spec_is_refused_without_production_ok(tmp_path: Path) -> None:
    for spec in ("inventories/production-example.yaml", "inventories/single-site.yaml"):
        r = freehold("loadtest", "seed", spec, "--accounts", "100", "--roster",
                     str(tmp_path / "r.json"))
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "--production-ok" in r.stderr and "not a lab spec" in r.stderr
    # with the flag the seed goes on (and stops at the next missing piece: its secrets file)
    r = freehold("loadtest", "seed", "inventories/production-example.yaml", "--accounts", "100",
                 "--production-ok", "--secrets", str(tmp_path / "none.secrets"))
    assert r.returncode == 2 and "--production-ok" not in r.stderr and "secrets" in r.stderr


def test_clean_removes_exactly_the_seeded_accounts(db: Db, tmp_path: Path) -> None:
    roster_path = tmp_path / "roster.json"
    r = freehold("loadtest", "seed", URL, "--accounts", "25", "--dsn", db.dsn,
                 "--roster", str(roster_path))
    assert r.returncode == 0, r.stderr
    ids = list(db.people.values())
    before = snapshot(db.dsn, ids)
    made = seeded(db.dsn)
    assert len(made) >= 25
    domain = json.loads(roster_path.read_text())["newcomer_domain"]
    newcomer = asyncio.run(_mingle(db, made[0][0], made[1][0], domain))
    assert snapshot(db.dsn, ids) != before  # the run's writes reached real accounts' counters

    r = freehold("loadtest", "clean", URL, "--dsn", db.dsn, "--roster", str(roster_path),
                 "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accounts"] == len(made) + 1  # and the newcomer
    assert seeded(db.dsn) == [] and not roster_path.exists()
    with psycopg.connect(db.dsn) as conn:
        left = {int(a) for (a,) in conn.execute("SELECT id FROM accounts").fetchall()}
        orphans = conn.execute(
            "SELECT (SELECT count(*) FROM posts WHERE author_id <> ALL(%(i)s)),"
            " (SELECT count(*) FROM sessions WHERE account_id <> ALL(%(i)s)),"
            " (SELECT count(*) FROM upvotes WHERE account_id <> ALL(%(i)s))",
            {"i": ids}).fetchone()
    # exactly the seeded accounts and the run's newcomer went; the legacy-named one stays
    assert newcomer not in left and left == set(ids)
    assert orphans == (0, 0, 0)
    assert snapshot(db.dsn, ids) == before  # counters of the real accounts and posts restored
    r = freehold("loadtest", "clean", URL, "--dsn", db.dsn, "--roster", str(roster_path),
                 "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["accounts"] == 0


async def _mingle(db: Db, one: int, two: int, domain: str) -> int:
    """What a load run (or a curious person) might do: load-test accounts follow, upvote and
    reply to a real account; a real account follows one back; a newcomer of the run's sign-up
    flood signs up (through the real sign-up, at the roster's newcomer domain) and follows a
    real account. Returns the newcomer's id."""
    from freehold.app.services import accounts, posts, social

    ctx = await open_ctx(db.settings)
    try:
        real = db.people["plain_person"]
        post = int(await ctx.db.fetchval("SELECT id FROM posts WHERE author_id = $1", real))
        for who in (one, two):
            await social.follow(ctx, who, real)
            await posts.upvote(ctx, who, post)
            await posts.create_post(ctx, who, "a reply", reply_to=post)
        await posts.create_post(ctx, one, "", echo_of=post)
        await social.follow(ctx, db.people["site_admin"], one)
        row = await accounts.signup(ctx, "nc_0123abcd", f"nc_0123abcd@{domain}", "pw of a run")
        await social.follow(ctx, int(row["id"]), real)
        return int(row["id"])
    finally:
        await close_ctx(ctx)
