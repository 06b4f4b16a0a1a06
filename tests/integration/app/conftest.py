"""The social app against real PostgreSQL, Redis and SeaweedFS, with real worker processes.

One database (migrated once) and one Redis database for all app tests; tests make their own
accounts with unique names. The API runs in-process (Starlette TestClient, lifespan included);
the fan-out, notify and moderation workers run as separate processes, stopped by pid.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from freehold.app.db import migrate
from freehold.app.devstack import Postgres, Redis, SeaweedS3, stop_process
from freehold.app.main import create_app
from freehold.app.settings import Settings
from tests.waiting import wait_for as shared_wait_for

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def app_settings(pg_server: Postgres, redis_server: Redis, s3_server: SeaweedS3) -> Settings:
    pg_server.psql("CREATE DATABASE freehold_app")
    dsn = pg_server.dsn_for("freehold_app")
    migrate(dsn)
    return Settings(
        database_url=dsn, redis_url=redis_server.url.rsplit("/", 1)[0] + "/3",
        s3_endpoint=s3_server.endpoint, s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key, s3_bucket="freehold-app-test",
        big_account_followers=6, jury_votes=2, strikes_to_suspend=2,
        rl_signup_per_ip=10_000, rl_login_per_ip=10_000, rl_login_per_account=10_000,
        # every in-process test client shares one address: sign-ups need no proof of work
        # here (tests/integration/app/test_signup_proof.py sets its own thresholds)
        signup_pow_free_per_ip=1_000_000, signup_pow_surge_per_window=0,
        rl_write_per_account=10_000, rl_write_per_ip=100_000,
        worker_block_ms=200, worker_claim_idle_ms=1500, bootstrap_admins="root_admin",
        db_pool_min=1, db_pool_max=10, secret_key=secrets.token_urlsafe(32))


@pytest.fixture(scope="session")
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as c:
        yield c


def start_worker(settings: Settings, kind: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {**os.environ, **settings.to_env(), **env}
    return subprocess.Popen([sys.executable, "-m", "freehold.app.worker", kind], cwd=ROOT, env=full,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def workers(app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    logdir = tmp_path_factory.mktemp("workers")
    procs = {k: start_worker(app_settings, k, logdir / f"{k}.log")
             for k in ("fanout", "notify", "moderation")}
    try:
        yield procs
    finally:
        for p in procs.values():
            stop_process(p)


@dataclass
class User:
    id: str
    username: str
    token: str
    password: str

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def new_user(client: TestClient, prefix: str = "u", **extra: Any) -> User:
    name = f"{prefix}_{secrets.token_hex(4)}"
    pw = "correct horse battery"
    r = client.post("/api/v1/accounts", json={"username": name, "email": f"{name}@example.org",
                                              "password": pw, **extra})
    assert r.status_code == 201, r.text
    doc = r.json()
    return User(doc["account"]["id"], name, doc["token"], pw)


@pytest.fixture
def mkuser(client: TestClient) -> Callable[..., User]:
    return lambda prefix="u", **kw: new_user(client, prefix, **kw)


def wait_for(fn: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll `fn` until it returns a truthy value (bounded in time); return that value."""
    return shared_wait_for("condition", fn, timeout, every)


def home_ids(client: TestClient, user: User, limit: int = 100) -> list[str]:
    r = client.get("/api/v1/timelines/home", params={"limit": limit}, headers=user.h)
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["items"]]


def make_admin(client: TestClient) -> User:
    """The bootstrap admin (FREEHOLD_BOOTSTRAP_ADMINS=root_admin), created once."""
    r = client.post("/api/v1/auth/login", json={"login": "root_admin", "password": "admin pass 1"})
    if r.status_code == 200:
        return User(r.json()["account"]["id"], "root_admin", r.json()["token"], "admin pass 1")
    r = client.post("/api/v1/accounts", json={"username": "root_admin",
                                              "email": "root@example.org",
                                              "password": "admin pass 1"})
    assert r.status_code == 201, r.text
    assert r.json()["account"]["admin"] is True
    return User(r.json()["account"]["id"], "root_admin", r.json()["token"], "admin pass 1")


@pytest.fixture(scope="session")
def rds(app_settings: Settings) -> Iterator[Any]:
    import redis

    r = redis.Redis.from_url(app_settings.redis_url, decode_responses=True)
    try:
        yield r
    finally:
        r.close()


def streams_idle(rds: Any, timeout: float = 20.0) -> None:
    """Wait until every consumer group has read and acknowledged everything queued."""
    def idle() -> bool:
        for stream in ("stream:posts", "stream:events"):
            if not rds.exists(stream):
                continue
            for g in rds.xinfo_groups(stream):
                if (g.get("lag") or 0) or g.get("pending"):
                    return False
        return True
    wait_for(idle, timeout)
