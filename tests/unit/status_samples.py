"""Probe output for the `freehold status` tests: a server's units section, and the `targets`
section a monitoring server prints (the JSON line deploy/ops/files/prom_targets.py makes)."""

from __future__ import annotations

import json

from freehold.deploy.ops.probes import MARK, units_for
from freehold.deploy.spec import ClusterSpec, Server


def units_section(spec: ClusterSpec, srv: Server, failed: tuple[str, ...] = ()) -> str:
    """Every unit the server's roles need, active (those in `failed`: failed)."""
    units = sorted({u for us in units_for(spec, srv).values() for u in us if "*" not in u})
    return f"{MARK}units\n" + "\n\n".join(
        f"Id={u}\nLoadState=loaded\nActiveState={'failed' if u in failed else 'active'}"
        f"\nSubState={'failed' if u in failed else 'running'}" for u in units) + f"\n{MARK}rc 0\n"


def targets_line(targets: dict[str, tuple[str, float | None, str]],
                 interval_s: float | None = 10.0) -> str:
    """instance -> (health, age_s, last error), as prom_targets.py prints them."""
    return json.dumps({"job": "node", "targets": [
        [name, health, age, interval_s, error]
        for name, (health, age, error) in targets.items()]})


def targets_section(targets: dict[str, tuple[str, float | None, str]],
                    interval_s: float | None = 10.0) -> str:
    return f"{MARK}targets\n{targets_line(targets, interval_s)}\n{MARK}rc 0\n"
