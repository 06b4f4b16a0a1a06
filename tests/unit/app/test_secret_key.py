"""The app refuses to start with the public development secret key unless development is said."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from freehold.app.main import create_app
from freehold.app.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[3]
DEV_SECRET_KEY = "dev-secret-change-me"  # the public default of app/settings.py


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, ""])
def test_create_app_refuses_the_development_key(key: str) -> None:
    with pytest.raises(SettingsError, match="FREEHOLD_SECRET_KEY is not set"):
        create_app(Settings(secret_key=key))


def test_a_real_key_or_development_may_start() -> None:
    Settings(secret_key="k" * 43).check_startup()
    Settings(development=True).check_startup()
    assert Settings.from_env({"FREEHOLD_DEVELOPMENT": "1"}).development


@pytest.mark.parametrize("env", [{}, {"FREEHOLD_SECRET_KEY": DEV_SECRET_KEY},
                                 {"FREEHOLD_DEVELOPMENT": "0"}])
def test_serve_exits_with_one_line_naming_the_variable(env: dict[str, str]) -> None:
    """`python -m freehold.app.serve` (what the app role's unit runs), for real: exit 2 before it
    migrates or listens, one line on stderr, no traceback."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("FREEHOLD_SECRET_KEY", "FREEHOLD_DEVELOPMENT")}
    r = subprocess.run([sys.executable, "-m", "freehold.app.serve", "--port", "1",
                        "--workers", "1"], cwd=ROOT, env={**base, **env}, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("freehold.app.serve: FREEHOLD_SECRET_KEY is not set")
    assert "FREEHOLD_DEVELOPMENT=1" in lines[0]
