"""Atomic state files (checkpoints, runbook step states) that a crash never corrupts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from freehold.deploy.atomic import write_json
from freehold.deploy.migrate import MigrateError

STEP_STATES = ("pending", "running", "done", "failed")




def read_json(path: Path, default: Any = None) -> Any:
    """Read a state file; a missing file gives `default`, an unreadable one a MigrateError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise MigrateError(
            f"{path}: not valid JSON (line {e.lineno}) — move it aside and rerun to start over"
        ) from None


def state_dir_for(manifest: Path) -> Path:
    """The folder holding the runbook's state files, beside the manifest."""
    return manifest.parent / f"{manifest.stem}.state"


def set_step(state_dir: Path | None, step: str, status: str, **detail: Any) -> None:
    """Record one runbook step's state (done, running, pending, failed) with details."""
    if state_dir is None:
        return
    if status not in STEP_STATES:
        raise ValueError(f"unknown step state {status!r}")
    path = state_dir / "steps.json"
    steps = read_json(path, {}) or {}
    entry = steps.get(step, {})
    entry.update({"state": status, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime()),
                  "pid": os.getpid(), **detail})
    steps[step] = entry
    write_json(path, steps)


def read_steps(state_dir: Path) -> dict[str, dict[str, Any]]:
    return read_json(state_dir / "steps.json", {}) or {}
