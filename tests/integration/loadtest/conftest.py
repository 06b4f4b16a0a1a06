"""The app served locally (uvicorn + its workers as processes) against the session's real
PostgreSQL, Redis and SeaweedFS, with a small dataset, for bounded load-test runs.

The dataset: app.seed (the app's COPY seeder) when this checkout has it; otherwise a small
power-law dataset written here with COPY (accounts, a preferential-attachment follow graph,
posts over the last days), enough for the roster and the users' skewed picks.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app.db import migrate
from app.ids import id_for_datetime
from app.services.media import MediaStore
from app.settings import Settings
from deploy.loadtest.localapp import LocalApp
from deploy.localservices import Postgres, Redis, SeaweedS3

ROOT = Path(__file__).resolve().parents[3]
HAS_APP_SEED = importlib.util.find_spec("app.seed") is not None

PROFILE = """\
# A test profile: the shape of loadtests/profiles/default.yaml with round numbers.
dau_ratio: {value: 0.4, source: "test figure"}
peak_to_average: {value: 2.5, source: "test figure"}
actions_per_dau_per_day:
  source: "test figure"
  home_feed: 40
  thread: 10
  profile: 5
  discover: 4
  search: 2
  notifications: 4
  post: 1.5
  reply: 1.5
  echo: 1
  upvote: 6
  follow: 0.5
  report: 0.1
  login: 0.3
  image_upload: 0.3
think_time_s: {min: 5, max: 25, source: "test figure"}
zipf_s: {value: 0.78, source: "test figure"}
surge_days: {value: 7, source: "test figure"}
app_rps_per_core: {value: 1000, source: "test figure"}
"""

LOOSE_SLO = """\
error_rate_max: 0.5
endpoint_error_rate_max: 1.0
min_requests: 1
load_reached_min: 0
soak_p99_drift_max: 1000
p99_ms: {default: 60000}
"""

STRICT_SLO = """\
error_rate_max: 0.01
min_requests: 1
p99_ms: {default: 1}
"""


@dataclass
class LtEnv:
    settings: Settings
    app: LocalApp
    dsn: str
    files: Path

    @property
    def url(self) -> str:
        return self.app.url

    def file(self, name: str) -> Path:
        return self.files / name


def fixture_dataset(dsn: str, accounts: int = 300, posts: int = 3000, seed: int = 7) -> None:
    """Accounts, follows by preferential attachment (a few accounts followed by most), posts
    over the last 3 days mostly by the followed; counters kept consistent."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    ids = [id_for_datetime(now - timedelta(days=30, seconds=i)) + rng.randrange(1 << 20)
           for i in range(accounts)]
    follows: set[tuple[int, int]] = set()
    weight = [1.0] * accounts
    for i, a in enumerate(ids):
        for _ in range(rng.randint(3, 20)):
            j = rng.choices(range(accounts), weights=weight, k=1)[0]
            if j != i and (a, ids[j]) not in follows:
                follows.add((a, ids[j]))
                weight[j] += 1.0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY accounts (id, username, email, password_hash) FROM STDIN") as cp:
            for i, a in enumerate(ids):
                cp.write_row((a, f"lt_{i}", f"lt_{i}@example.org", "!"))
        with cur.copy("COPY follows (follower_id, followee_id) FROM STDIN") as cp:
            for f in follows:
                cp.write_row(f)
        with cur.copy("COPY posts (id, author_id, body) FROM STDIN") as cp:
            for k in range(posts):
                t = now - timedelta(seconds=rng.uniform(0, 3 * 86400))
                author = ids[min(int(rng.paretovariate(1.2)) - 1, accounts - 1)]
                cp.write_row((id_for_datetime(t) + rng.randrange(1 << 21), author,
                              f"post {k} #news"))
        cur.execute("UPDATE accounts a SET"
                    " followers_count = (SELECT count(*) FROM follows WHERE followee_id = a.id),"
                    " following_count = (SELECT count(*) FROM follows WHERE follower_id = a.id),"
                    " posts_count = (SELECT count(*) FROM posts WHERE author_id = a.id)")
        cur.execute("UPDATE posts SET upvotes_count = (id % 17)")


@pytest.fixture(scope="session")
def lt_env(pg_server: Postgres, redis_server: Redis, s3_server: SeaweedS3,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LtEnv]:
    pg_server.psql("CREATE DATABASE freehold_lt")
    dsn = pg_server.dsn_for("freehold_lt")
    migrate(dsn)
    settings = Settings(
        database_url=dsn, redis_url=redis_server.url.rsplit("/", 1)[0] + "/6",
        s3_endpoint=s3_server.endpoint, s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key, s3_bucket="freehold-loadtest",
        worker_block_ms=200, db_pool_min=1, db_pool_max=10)
    MediaStore.from_settings(settings).ensure_bucket_sync()
    if HAS_APP_SEED:
        from deploy.loadtest.seed import run_app_seed

        run_app_seed(dsn, 300)
    else:
        fixture_dataset(dsn)
    files = tmp_path_factory.mktemp("lt")
    (files / "profile.yaml").write_text(PROFILE)
    (files / "loose.yaml").write_text(LOOSE_SLO)
    (files / "strict.yaml").write_text(STRICT_SLO)
    app = LocalApp(settings, files / "app").start()
    try:
        yield LtEnv(settings=settings, app=app, dsn=dsn, files=files)
    finally:
        app.stop()


def freehold(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as an operator runs it (bounded in time)."""
    return subprocess.run([sys.executable, "-m", "deploy", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)
