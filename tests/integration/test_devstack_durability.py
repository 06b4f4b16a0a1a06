"""The local servers' durability modes, read back from the running servers (issue 18, item 9):
"production" is what the roles deploy, "fast" is for tests only."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.app.devstack import LocalServiceError, durability_of, local_stack

PRODUCTION = {"postgres": {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
              "redis": {"appendonly": "yes", "appendfsync": "everysec"}}


def test_production_durability_is_what_the_servers_report(tmp_path: Path) -> None:
    with local_stack(tmp_path, durability="production") as st:
        got = durability_of(st["postgres"], st["redis"])  # type: ignore[arg-type]
    assert got == PRODUCTION


def test_fast_durability_is_reported_as_such(tmp_path: Path) -> None:
    with local_stack(tmp_path, durability="fast") as st:
        got = durability_of(st["postgres"], st["redis"])  # type: ignore[arg-type]
    assert got == {"postgres": {"fsync": "off", "synchronous_commit": "off",
                                "full_page_writes": "off"},
                   "redis": {"appendonly": "no", "appendfsync": "everysec"}}


def test_unknown_durability_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(LocalServiceError,
                       match="durability: 'safe' — use one of fast, production"), \
            local_stack(tmp_path, durability="safe"):
        pass
    assert not any(tmp_path.iterdir())
