"""In CI (`CI=true`), a skipped test is a failure: a run that skipped the lab because it was not
root, or a tool was missing, must not go green with no lab coverage.

Registered by tests/conftest.py. A skip stays a skip outside CI (a laptop without root may skip
the lab), and in CI only for the tests in ALLOWED_SKIPS, each with the reason it was reviewed.
Skips raised while collecting (module-level skips, `importorskip`) count as well.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# nodeid -> why skipping it hides no coverage. Keep it short; every entry is reviewed.
ALLOWED_SKIPS: dict[str, str] = {
    "tests/unit/app/test_passwords.py::test_hashing_threads_run_at_a_lower_priority":
        "per-thread nice exists only on Linux; off Linux there is nothing to cover",
}
CI_VALUES = ("true", "1", "yes")
STASH_KEY = pytest.StashKey[list[str]]()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def as_failure(report: pytest.TestReport | pytest.CollectReport, config: pytest.Config) -> None:
    """Turn a skip into a failure that says why and how to fix it."""
    reason = skip_reason(report)
    report.outcome = "failed"
    report.longrepr = (f"skipped in CI ({reason}): with CI=true every test must run — install "
                       "what it needs (`bash scripts/install-deps.sh`, as root) or, if skipping "
                       "hides no coverage, add its nodeid with the reason to ALLOWED_SKIPS in "
                       "tests/ci_skip_policy.py")
    config.stash.setdefault(STASH_KEY, []).append(f"{report.nodeid}: {reason}")


def refused(report: pytest.TestReport | pytest.CollectReport) -> bool:
    return (in_ci() and report.skipped and not hasattr(report, "wasxfail")
            and report.nodeid not in ALLOWED_SKIPS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if refused(report):
        as_failure(report, item.config)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if refused(report):
        as_failure(report, collector.config)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    turned = config.stash.get(STASH_KEY, [])
    if turned:
        terminalreporter.section("skips refused in CI (CI=true)", sep="=", red=True, bold=True)
        for line in turned:
            terminalreporter.line(line)
