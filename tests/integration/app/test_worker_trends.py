"""The trends worker as a real process (`python -m freehold.app.worker trends`): its loop recomputes
the discover tab's trending tags every `trends_interval_s`, and its first round makes the missing
monthly post partitions. Started and stopped (by pid) by the test."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from starlette.testclient import TestClient

from freehold.app.devstack import Postgres
from freehold.app.settings import Settings
from tests.integration.app.conftest import new_user, start_worker, stop_process, wait_for

DB = "freehold_app"
# the last partition the worker keeps ready: three months after this one (months_ahead = 3)
LAST_PART = ("SELECT 'posts_' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC')"
             " + interval '3 months', 'YYYY_MM')")


def sql(pg: Postgres, query: str) -> str:
    try:
        return pg.psql(query, database=DB)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"{query}: {exc.stderr}") from exc


def test_trends_worker_loop_makes_partitions_and_trending_tags(
        client: TestClient, app_settings: Settings, pg_server: Postgres, tmp_path: Path) -> None:
    part = sql(pg_server, LAST_PART)
    exists = f"SELECT to_regclass('{part}') IS NOT NULL"
    assert sql(pg_server, exists) == "t"
    # a future month: no post can be in it yet, so it can go (the worker must make it again)
    assert sql(pg_server, f"SELECT count(*) FROM {part}") == "0"
    refs = f"SELECT count(*) FROM pg_constraint WHERE confrelid = '{part}'::regclass"
    n_refs = int(sql(pg_server, refs))
    assert n_refs > 0  # the foreign keys to posts reach each partition
    sql(pg_server, f"ALTER TABLE posts DETACH PARTITION {part}; DROP TABLE {part}")
    log = tmp_path / "trends.log"
    proc = start_worker(app_settings.replace(trends_interval_s=1), "trends", log)
    try:
        def logged(text: str) -> bool:
            assert proc.poll() is None, f"trends worker exited: {log.read_text()}"
            return text in log.read_text()

        wait_for(lambda: logged("trends: "), timeout=60, every=0.2)  # its first round is done
        assert sql(pg_server, exists) == "t"
        assert int(sql(pg_server, refs)) == n_refs  # a full partition again
        assert "created 1 post partitions" in log.read_text()
        # posts made after that round: only a later round of the loop can find their tag
        tag = f"loop{secrets.token_hex(4)}"
        users = [new_user(client, "tw") for _ in range(4)]
        for i, u in enumerate(users):
            r = client.post("/api/v1/posts", headers=u.h, json={"body": f"#{tag} number {i}"})
            assert r.status_code == 201, r.text

        def trending() -> dict[str, object] | None:
            r = client.get("/api/v1/discover/tags", headers=users[0].h)
            assert r.status_code == 200, r.text
            return next((t for t in r.json()["items"] if t["tag"] == tag), None)

        found = wait_for(trending, timeout=30, every=0.2)
        assert found == {"tag": tag, "posts": 4, "accounts": 4}
        assert log.read_text().count("trends: ") >= 2
        assert proc.poll() is None
    finally:
        stop_process(proc)
        sql(pg_server, "SELECT freehold_ensure_post_partitions(1, 3)")
    assert proc.returncode == 0, log.read_text()  # SIGTERM: stops after the round, cleanly
