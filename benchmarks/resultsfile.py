"""The one header every results file starts with, and the writer that puts it there.

    from resultsfile import write_results
    write_results(RESULTS, doc, script=__file__, settings=vars(args), durability=...)

The header (`run`, built by deploy.provenance.run_header, which the calibration file uses too)
records the commit the benchmark ran on (git HEAD and a dirty flag), the
script that wrote the file (path from the repository root), the settings it ran with (its
arguments, and the durability the local PostgreSQL and Redis reported: SHOW / CONFIG GET), the
load average and the time. tests/unit/test_results_files.py checks every file in
benchmarks/results has it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from freehold.deploy.provenance import commit_state, run_header  # noqa: E402

# the code the benchmark runs is the code at its start (a commit made during a long run does not
# change it): taken when the benchmark imports this module
CODE_AT_START = commit_state(ROOT)


def with_header(doc: Mapping[str, Any], script: str | Path, settings: Mapping[str, Any],
                durability: Mapping[str, Any] | str | None = None) -> dict[str, Any]:
    """`doc` with the `run` header first (an older header replaced)."""
    return {"run": run_header(script, settings, durability, CODE_AT_START),
            **{k: v for k, v in doc.items() if k != "run"}}


def write_results(path: Path, doc: Mapping[str, Any], *, script: str | Path,
                  settings: Mapping[str, Any],
                  durability: Mapping[str, Any] | str | None = None, indent: int = 2) -> Path:
    """Write `doc` under the run header to `path` (atomically); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(with_header(doc, script, settings, durability), indent=indent,
                              default=str) + "\n")
    tmp.replace(path)
    return path
