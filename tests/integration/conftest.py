"""Real PostgreSQL and Redis started for the integration tests, stopped by process id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from freehold.app.devstack import Postgres, Redis, SeaweedS3


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    pg = Postgres(Path(tmp_path_factory.mktemp("pg"))).start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    rd = Redis(Path(tmp_path_factory.mktemp("redis"))).start()
    try:
        yield rd
    finally:
        rd.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    sw = SeaweedS3(Path(tmp_path_factory.mktemp("s3"))).start()
    try:
        yield sw
    finally:
        sw.stop()
