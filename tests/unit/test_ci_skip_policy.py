"""tests/ci_skip_policy.py: with CI=true every kind of skip fails the run (unless allowed);
without CI a skip stays a skip. Each case is a tiny pytest session run by pytester."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests import ci_skip_policy

pytest_plugins = ("pytester",)

# one test per way the tree skips: in the test, by a marker, in a (lab_ready-like) fixture,
# for the whole module at collection, and a missing import
SKIPS = {kind: textwrap.dedent(source) for kind, source in {
    "call": """
        import pytest
        def test_it():
            pytest.skip("lab tests need root")
    """,
    "marker": """
        import pytest
        @pytest.mark.skipif(True, reason="the lab needs root")
        def test_it():
            pass
    """,
    "fixture": """
        import pytest
        @pytest.fixture(scope="session")
        def lab_ready():
            pytest.skip("debootstrap missing")
        def test_it(lab_ready):
            pass
    """,
    "module": """
        import pytest
        pytest.skip("no lab here", allow_module_level=True)
        def test_it():
            pass
    """,
    "import": """
        import pytest
        pytest.importorskip("a_module_that_is_not_installed")
        def test_it():
            pass
    """,
}.items()}


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    # the policy as the only project plugin; locust's plugin patches gevent at import: keep it out
    pytester.makeini("[pytest]\naddopts = -p no:locust -p no:cacheprovider "
                     "-p tests.ci_skip_policy\n"
                     "filterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    pytester.makepyfile(test_runs="def test_runs():\n    pass\n")  # a run with a module skip
    return pytester


@pytest.mark.parametrize("kind", sorted(SKIPS))
def test_a_skip_fails_the_run_in_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                    kind: str) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_skips=SKIPS[kind])
    result = pytester.runpytest_inprocess()
    assert result.ret != 0
    outcomes = result.parseoutcomes()
    assert "skipped" not in outcomes, outcomes
    result.stdout.fnmatch_lines(["*skipped in CI (*): with CI=true every test must run*",
                                 "*skips refused in CI (CI=true)*"])


@pytest.mark.parametrize("kind", sorted(SKIPS))
def test_a_skip_stays_a_skip_outside_ci(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(test_skips=SKIPS[kind])
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1, "skipped": 1}
    assert "skipped in CI" not in result.stdout.str()


def test_ci_false_allows_skips(pytester: pytest.Pytester,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    pytester.makepyfile(test_skips=SKIPS["call"])
    assert pytester.runpytest_inprocess().ret == pytest.ExitCode.OK


def test_an_allowed_skip_stays_a_skip_in_ci(pytester: pytest.Pytester,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setitem(ci_skip_policy.ALLOWED_SKIPS, "test_skips.py::test_it", "reviewed")
    pytester.makepyfile(test_skips=SKIPS["call"] + "\ndef test_other():\n    pytest.skip('x')\n")
    result = pytester.runpytest_inprocess()
    assert result.ret != 0
    result.assert_outcomes(passed=1, skipped=1, failed=1)  # the other skip is refused
    result.stdout.fnmatch_lines(["*test_skips.py::test_other: x*"])


def test_passing_and_failing_tests_are_left_alone_in_ci(pytester: pytest.Pytester,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n\n"
                                   "def test_bad():\n    assert 1 == 2\n")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=2, failed=1)
    assert "skips refused in CI" not in result.stdout.str()


def test_allowed_skips_name_real_tests_with_reasons() -> None:
    root = Path(__file__).resolve().parents[2]
    for nodeid, reason in ci_skip_policy.ALLOWED_SKIPS.items():
        path, _, name = nodeid.partition("::")
        assert (root / path).is_file(), nodeid
        assert f"def {name}(" in (root / path).read_text(), nodeid
        assert len(reason) > 20, f"{nodeid}: give the reason skipping it hides no coverage"


def test_ci_runner_sets_ci_true() -> None:
    """.ci/run turns the policy on even when the CI service does not set CI itself."""
    root = Path(__file__).resolve().parents[2]
    lines = (root / ".ci" / "run").read_text().splitlines()
    assert "export CI=true" in lines
    assert lines.index("export CI=true") < lines.index("exec make test")
