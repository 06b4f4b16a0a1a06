#!/usr/bin/env bash
# Install what Freehold needs: Debian packages (when root) and the Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

want=$(grep -vE '^\s*(#|$)' scripts/debian-packages.txt | tr '\n' ' ')
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "freehold: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # the lab and the tests start their own servers; the packaged ones stay off
    for svc in postgresql redis-server prometheus; do
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
  else
    echo "freehold: missing Debian packages:$missing" >&2
    echo "freehold: run as root, or: sudo apt-get install$missing" >&2
    exit 2
  fi
fi

stamp="$VENV/.freehold-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "freehold: installing the Python environment in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -U pip 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/pip" install -q -e '.[dev]' 2>&1 | grep -vE '^WARNING: Location|BuildBackendWarning|^\s' || true
  # fail loudly if broken; locust (gevent) patches ssl, so it is checked in its own process
  "$VENV/bin/python" -c "import freehold.deploy.cli, pyinfra, fabric"
  "$VENV/bin/python" -c "import locust"
  touch "$stamp"
fi

# masto.js for the Mastodon API's integration test (npm registry, pinned by its lock file)
js=tests/integration/app/mastodon/js
if [ ! -f "$js/node_modules/masto/package.json" ] || [ "$js/package-lock.json" -nt "$js/node_modules" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "freehold: installing masto.js for the integration tests ($js)"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "freehold: npm is missing: the masto.js test will fail (install nodejs and npm)" >&2
  fi
fi
