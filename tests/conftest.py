"""Markers follow the folder: tests/unit, tests/integration, tests/lab.

Unit tests run first. Pytest books the teardown of session-scoped fixtures to the session's
last test: with tests/unit last (its name sorts last), the lab going down and the integration
servers stopping (about a minute) showed up as the teardown of a unit test that takes 0.1 s
(tests/unit/test_status.py). Run first, the unit tests also fail in seconds, not after the lab.

With CI=true a skipped test fails the run (tests/ci_skip_policy.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import ci_skip_policy

SUITES = ("unit", "integration", "lab")
# Lab modules run in file order, except these, last: the failover drills leave the cluster's
# 5-minute alert windows (AppLatencyP99 over rate(...[5m]), `for: 5m`) firing for minutes after
# they end, and `freehold status` rightly reports a firing alert as degraded: the modules that
# check status and alerts (test_platform_ops.py) run on a cluster no drill has just shaken.
LAB_LAST = ("test_platform_drills.py",)


def suite_of(path: Path, rootpath: Path) -> str | None:
    """`unit`, `integration` or `lab` for a file under tests/<suite>/ (None otherwise)."""
    try:
        parts = path.relative_to(rootpath).parts
    except ValueError:
        parts = path.parts
    for i, part in enumerate(parts[:-1]):
        if part == "tests" and parts[i + 1] in SUITES:
            return parts[i + 1]
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ci_skip_policy, "freehold-ci-skip-policy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank: dict[str, int] = {}
    for item in items:
        suite = suite_of(item.path, config.rootpath)
        if suite is not None:
            item.add_marker(getattr(pytest.mark, suite))
        rank[item.nodeid] = 2 * (SUITES.index(suite) if suite else len(SUITES)) + (
            suite == "lab" and item.path.name in LAB_LAST)
    items.sort(key=lambda item: rank[item.nodeid])  # stable: each suite keeps its order
