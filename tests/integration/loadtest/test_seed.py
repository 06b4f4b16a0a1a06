"""`freehold loadtest seed`: the roster's members really are logged in, rankings are skewed."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.loadtest.conftest import LtEnv, freehold


@pytest.fixture(scope="module")
def roster(lt_env: LtEnv) -> dict:
    path = lt_env.file("roster.json")
    r = freehold("loadtest", "seed", lt_env.url, "--accounts", "300", "--dsn", lt_env.dsn,
                 "--roster-only", "--members", "120", "--roster", str(path), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["members"] == 120 and rep["roster"] == str(path)
    return json.loads(path.read_text())


def test_members_hold_working_sessions_and_password(lt_env: LtEnv, roster: dict) -> None:
    assert len(roster["members"]) == 120
    assert len({m[0] for m in roster["members"]}) == 120
    with httpx.Client(base_url=lt_env.url + "/api/v1", timeout=10) as c:
        for aid, username, token in roster["members"][:5]:
            me = c.get("/accounts/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            assert me.json()["id"] == aid and me.json()["username"] == username
        aid, username, _ = roster["members"][7]
        r = c.post("/auth/login", json={"login": username, "password": roster["password"]})
        assert r.status_code == 200 and r.json()["account"]["id"] == aid
        bad = c.get("/accounts/me", headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401


def test_rankings_follow_popularity(lt_env: LtEnv, roster: dict) -> None:
    import psycopg

    ids = [int(a) for a, _ in roster["popular"]]
    with psycopg.connect(lt_env.dsn) as conn:
        counts = dict(conn.execute("SELECT id, followers_count FROM accounts"
                                   " WHERE id = ANY(%s)", (ids,)).fetchall())
    followers = [counts[i] for i in ids]
    assert followers == sorted(followers, reverse=True)
    # power law: the most followed account has many times the median's followers
    assert followers[0] >= 5 * max(1, followers[len(followers) // 2])
    assert roster["posts"] and roster["accounts_total"] >= 300


def test_seed_refuses_bad_input_in_one_line(lt_env: LtEnv) -> None:
    r = freehold("loadtest", "seed", lt_env.url, "--accounts", "lots", "--dsn", lt_env.dsn)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--accounts" in r.stderr
    r = freehold("loadtest", "seed", lt_env.url, "--accounts", "100", "--dsn",
                 "postgresql://nobody:x@127.0.0.1:1/none", "--roster-only")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--dsn" in r.stderr


def test_seed_through_app_seed_reports_its_rate(lt_env: LtEnv) -> None:
    path = lt_env.file("roster-seeded.json")
    r = freehold("loadtest", "seed", lt_env.url, "--accounts", "2000", "--dsn", lt_env.dsn,
                 "--members", "50", "--roster", str(path), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["accounts"] >= 2000 and rep["follows"] > rep["accounts"]
    assert rep["rows_per_s"] > 0 and rep["posts"] > 0
    import psycopg

    with psycopg.connect(lt_env.dsn) as conn:
        upvotes, wrong, top, median = conn.execute(
            "SELECT (SELECT count(*) FROM upvotes),"
            " (SELECT count(*) FROM posts p WHERE upvotes_count <> (SELECT count(*)"
            "  FROM upvotes u WHERE u.post_id = p.id)),"
            " (SELECT max(upvotes_count) FROM posts),"
            " (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY upvotes_count) FROM posts)"
        ).fetchone()
    # ~20 upvotes per account, every post's count equals its upvotes, popular posts gather most
    assert upvotes >= 10 * 2000 and wrong == 0 and top >= 10 * max(1, median)
