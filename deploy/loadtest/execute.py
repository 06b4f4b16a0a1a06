"""One load-test run from plan to report: plan.json, Locust (local or on loadgen servers),
per-step analysis, summary.json, the PNG chart beside Locust's HTML report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from freehold.deploy.loadtest.analysis import RunResult, analyse, load_steps
from freehold.deploy.loadtest.runner import RunOutput, run_local
from freehold.deploy.loadtest.target import RUNS, Target
from freehold.loadgen.report import chart, read_history
from freehold.loadgen.shapes import LoadPlan
from freehold.loadgen.slo import Slo


@dataclass
class Outcome:
    result: RunResult
    run: RunOutput
    out_dir: Path
    summary: dict[str, Any]

    @property
    def chart(self) -> Path:
        return self.out_dir / "chart.png"


def run_dir(shape: str, base: Path | None = None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    d = (base or RUNS) / f"{shape}-{stamp}"
    n = 1
    while d.exists():
        n += 1
        d = (base or RUNS) / f"{shape}-{stamp}-{n}"
    return d


def execute(plan: LoadPlan, target: Target, roster: Path, slo: Slo, out: Path, *,
            workers: int = 1, remote: bool = False,
            on_tick: Callable[[float, float], None] | None = None) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    plan.roster = str(roster.resolve())
    plan.out_dir = str(out.resolve())
    plan.slo = slo.to_json()
    plan_path = plan.save(out / "plan.json")
    if remote:
        from freehold.deploy.loadtest.remote import run_remote

        run = run_remote(plan, plan_path, out, target, on_tick=on_tick)
    else:
        run = run_local(plan, plan_path, out, workers=workers, on_tick=on_tick)
    result = analyse(plan, load_steps(run.steps_json), slo)
    if run.timed_out:
        result.run_breaches.append("the run was stopped at its time bound")
    summary = result.to_json()
    summary.update(target=target.label, url=target.url, out_dir=str(out),
                   html=str(run.html), csv_prefix=str(run.csv_prefix),
                   chart=str(out / "chart.png"), generator_cpu=run.generator_cpu,
                   workers=workers, wall_s=round(run.wall_s, 1),
                   measured_at=datetime.now(UTC).isoformat(timespec="seconds"))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    chart(summary, read_history(out / "locust_stats_history.csv"), out / "chart.png",
          title=f"{plan.shape} on {target.label}")
    return Outcome(result=result, run=run, out_dir=out, summary=summary)
