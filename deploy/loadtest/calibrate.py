"""`freehold loadtest calibrate`: the highest requests/s one app server holds within the SLO.

Load rises step by step (users x factor, the profile's action mix, think times compressed) on ONE
app server, addressed directly (not through the load balancer), until a step breaks the SLO.
The highest passing step's requests/s is the server's capacity; divided by the server's cores it
is the per-core figure written to `loadgen/measurements/calibration.json`, which the capacity
profile names (`app_rps_per_core.measured`): `freehold capacity` and the load tests' scale factor
then use it and say so, with the file and the date. The file starts with the run header
(deploy.provenance: commit, settings, durability of the servers measured).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from freehold.deploy.loadtest.analysis import highest_passing, run_requests
from freehold.deploy.loadtest.execute import Outcome, execute
from freehold.deploy.loadtest.target import ROOT, Target
from freehold.deploy.provenance import DEPLOYED_DURABILITY, commit_state, run_header
from freehold.loadgen import shapes
from freehold.loadgen.slo import Slo
from freehold.loadgen.traffic import TrafficModel

CALIBRATION = ROOT / "loadgen" / "measurements" / "calibration.json"
# a spec's servers run what the roles deploy; a bare URL's servers are unknown to us
DURABILITY_OF_URL = ("not read: the target is a URL; whoever started its servers records "
                     "their durability here (benchmarks/locust_bench.py does)")


def calibration_doc(outcome: Outcome, target: Target, server_url: str, server_cores: float,
                    model: TrafficModel, settings: dict[str, Any] | None = None,
                    code: dict[str, object] | None = None) -> dict[str, Any]:
    res = outcome.result
    best = highest_passing(res)
    broke = res.first_failed
    rps = best.rps if best else 0.0
    doc: dict[str, Any] = {
        "run": run_header(__file__, settings or {},
                          DURABILITY_OF_URL if target.spec is None else DEPLOYED_DURABILITY,
                          code),
        "rps_per_server": round(rps, 1),
        "rps_per_core": round(rps / server_cores, 1) if server_cores else 0.0,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": {"label": target.label, "server_url": server_url,
                   "server_cores": server_cores},
        "slo": res.slo.to_json(),
        "slo_broken": broke is not None,
        "limited_by": (f"SLO broke at {broke.name}: {'; '.join(broke.breaches[:3])}" if broke
                       else "SLO never broke within the ramp: the figure is a lower bound"),
        "best_step": best.to_json() | {"endpoints": None} if best else None,
        "steps": [{"name": s.name, "users": s.users, "requests": s.requests,
                   "rps": round(s.rps, 1), "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
                   "error_rate": round(s.error_rate, 5), "passed": s.passed}
                  for s in res.steps],
        # every request of the run: the steps' counts leave out their warm-ups
        "requests_total": run_requests(Path(f"{outcome.run.csv_prefix}_stats.csv")),
        "mix": res.plan.weights,
        "profile": str(model.profile),
        "generator_cpu": outcome.run.generator_cpu,
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "report": {"html": str(outcome.run.html), "chart": str(outcome.chart),
                   "summary": str(outcome.out_dir / "summary.json")},
        "source": "freehold loadtest calibrate (Locust, the profile's action mix, one app "
                  "server addressed directly)",
    }
    return doc


def calibrate(target: Target, model: TrafficModel, roster: Path, slo: Slo, out_dir: Path, *,
              duration_s: float, workers: int = 1, server: int = 0, start_users: int = 4,
              factor: float = 1.6, steps: int = 10, think_scale: float = 0.02,
              write_to: Path | None = CALIBRATION, remote: bool = False,
              on_tick: Callable[[float, float], None] | None = None
              ) -> tuple[dict[str, Any], Outcome]:
    code = commit_state()  # the code this run measures, before it runs
    server_url = target.app_urls[server]
    cores = float(target.app_server_cores[server]) if target.app_server_cores else 1.0
    if target.spec is None:  # a URL: its cores are what --app-cores says
        cores = target.app_cores
    plan = shapes.calibrate(model, server_url, duration_s, start_users=start_users,
                            factor=factor, steps=steps, think_scale=think_scale)
    outcome = execute(plan, target, roster, slo, out_dir, workers=workers, remote=remote,
                      on_tick=on_tick)
    settings = {"duration_s": duration_s, "workers": workers, "server": server,
                "start_users": start_users, "factor": factor, "steps": steps,
                "think_scale": think_scale, "remote": remote}
    doc = calibration_doc(outcome, target, server_url, cores, model, settings, code)
    (out_dir / "calibration.json").write_text(json.dumps(doc, indent=1))
    if write_to is not None:
        write_to.parent.mkdir(parents=True, exist_ok=True)
        tmp = write_to.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(write_to)
    return doc, outcome
