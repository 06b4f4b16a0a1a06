"""Which code a measurement ran on: the git commit of the working tree and whether it was dirty.

Every results file (benchmarks/resultsfile.py) and the calibration file
(deploy/loadtest/calibrate.py) start with `run_header`, so that a figure can be traced to the
code that made it and the settings it ran with.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# files the measurements themselves write: their being modified does not make the code dirty
WRITTEN_BY_MEASUREMENTS = ("benchmarks/results", "loadgen/measurements")
# what a measurement on deployed servers (lab or production) runs with: the roles' settings
DEPLOYED_DURABILITY = ("production, as deployed by roles/postgres (fsync, full_page_writes, "
                       "synchronous_commit on) and roles/redis (appendonly yes, appendfsync "
                       "everysec)")


def commit_state(root: Path = ROOT) -> dict[str, object]:
    """{"commit": HEAD's sha, "dirty": True when tracked or new files differ from it (the
    measurements' own output folders left out)}; commit None outside a git checkout."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--", ".",
                 *[f":(exclude){p}" for p in WRITTEN_BY_MEASUREMENTS])
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _shown(path: Path) -> str:
    """A path from the repository root when it lies inside it (the same in every checkout)."""
    full = path.resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


def run_header(script: str | Path, settings: Mapping[str, Any],
               durability: Mapping[str, Any] | str | None = None,
               code: Mapping[str, object] | None = None) -> dict[str, Any]:
    """What a results file says about the run that wrote it; `code`: commit_state() taken
    when the run started (the code it ran), else now."""
    return {**(code or commit_state(ROOT)), "script": _shown(Path(script)),
            "settings": {k: (_shown(v) if isinstance(v, Path) else v)
                         for k, v in settings.items()},
            "durability": durability,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "written_at": datetime.now(UTC).isoformat(timespec="seconds")}
