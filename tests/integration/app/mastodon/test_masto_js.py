"""masto.js (npm `masto`, the TypeScript client of Elk, Phanpy and others) running the same
scenario as the Mastodon.py test from Node, against the app served by uvicorn on loopback.

Its package is installed into js/node_modules from the npm registry (pinned by
js/package-lock.json) by scripts/install-deps.sh, or here when missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.app.mastodon.test_mastodon_py import base  # noqa: F401
from tests.mastoclient import signup

JS = Path(__file__).parent / "js"


def ensure_masto() -> None:
    if (JS / "node_modules" / "masto" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: run `make setup` (scripts/install-deps.sh)")
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def test_masto_js_scenario(base: str, workers: Any) -> None:  # noqa: F811
    ensure_masto()
    node = shutil.which("node")
    assert node, "node is not installed: run `make setup`"
    alice, bob = signup(base, "mjs"), signup(base, "mjs")
    r = subprocess.run([node, "scenario.mjs", base, alice["token"], bob["token"]], cwd=JS,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ok"] and out["account"] == alice["name"]
    assert {"follow", "favourite", "reblog", "mention"} <= set(out["notifications"])
    assert len(out["pages"]) == 3
    assert out["streamed"]  # its user stream (WebSocket) got the followed account's post
