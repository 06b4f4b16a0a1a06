"""The app served locally (uvicorn + its workers as processes) against the session's real
PostgreSQL, Redis and SeaweedFS, with a small dataset, for bounded load-test runs.

The dataset: app.seed (the app's COPY seeder: accounts, a power-law follow graph, posts over the
last days), 300 accounts, enough for the roster and the users' skewed picks.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from freehold.app.db import migrate
from freehold.app.devstack import Postgres, Redis, SeaweedS3
from freehold.app.services.media import MediaStore
from freehold.app.settings import Settings
from freehold.deploy.loadtest.localapp import LocalApp
from freehold.deploy.loadtest.seed import run_app_seed

ROOT = Path(__file__).resolve().parents[3]

PROFILE = """\
# A test profile: the shape of loadgen/profiles/default.yaml with round numbers.
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
        worker_block_ms=200, db_pool_min=1, db_pool_max=10, secret_key=secrets.token_urlsafe(32))
    MediaStore.from_settings(settings).ensure_bucket_sync()
    run_app_seed(dsn, 300)
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
    return subprocess.run([sys.executable, "-m", "freehold.deploy", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)
