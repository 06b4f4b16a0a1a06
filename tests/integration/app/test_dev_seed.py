"""`python -m app.dev` demo data: seeded through the services into a fresh database."""

from __future__ import annotations

import asyncio
from typing import Any

from app.db import migrate
from app.dev import DEMO_USERS, seed
from app.settings import Settings
from deploy.localservices import Postgres


def test_seed_demo_data(pg_server: Postgres, app_settings: Settings) -> None:
    pg_server.psql("CREATE DATABASE freehold_dev_seed")
    dsn = pg_server.dsn_for("freehold_dev_seed")
    assert migrate(dsn) == ["0001_schema", "0002_thread_replies_index"]
    assert migrate(dsn) == []  # idempotent
    s = app_settings.replace(database_url=dsn, redis_url=app_settings.redis_url[:-2] + "/5",
                             s3_endpoint="")
    ids: dict[str, Any] = asyncio.run(seed(s, n_posts=12))
    assert set(ids) == {"demo_admin", *DEMO_USERS}
    assert asyncio.run(seed(s)) == {}  # a second run changes nothing
    n = pg_server.psql("SELECT count(*) FROM posts", database="freehold_dev_seed")
    assert int(n) == 13
    admin = pg_server.psql("SELECT is_admin AND is_juror FROM accounts"
                           " WHERE username = 'demo_admin'", database="freehold_dev_seed")
    assert admin == "t"
    parts = pg_server.psql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'posts'::regclass",
                           database="freehold_dev_seed")
    assert int(parts) >= 5  # monthly partitions + default
