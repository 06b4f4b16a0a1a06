#!/usr/bin/env bash
# The whole test suite: lint, then unit, integration and lab tests (lab needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
"$VENV/bin/ruff" check .
# pytest exits 5 when it collects no test: that is a failure here too (set -e). With CI=true
# (.ci/run sets it) a skipped test fails the run too (tests/ci_skip_policy.py).
exec "$VENV/bin/pytest" -q --durations=30 "$@"
