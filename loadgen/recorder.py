"""Per-step measurements inside the Locust master (or the single local process).

At each step's measuring start (after its warm-up) and at its end, the cumulative per-endpoint
stats (request and failure counts, response-time histograms) are snapshotted; their difference is
the step's exact histogram. `steps.json` in the plan's output folder is rewritten after every
step, so a run cut short still leaves its finished steps. Runs only where Locust runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from freehold.loadgen.shapes import LoadPlan
from freehold.loadgen.slo import AGGREGATED, Slo, judge, window


def snapshot(stats: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in list(stats.entries.values()):
        out[f"{e.method} {e.name}"] = {"requests": e.num_requests, "failures": e.num_failures,
                                       "hist": dict(e.response_times)}
    t = stats.total
    out[AGGREGATED] = {"requests": t.num_requests, "failures": t.num_failures,
                       "hist": dict(t.response_times)}
    return out


def error_counts(stats: Any) -> dict[str, int]:
    return {f"{e.method} {e.name}: {e.error}": e.occurrences
            for e in list(stats.errors.values())}


class Recorder:
    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.slo = Slo.from_json(plan.slo) if plan.slo else None
        self.out = Path(plan.out_dir) if plan.out_dir else None
        self.records: list[dict[str, Any]] = []
        self.current: int | None = None
        self._start_snap: dict[str, Any] = {}
        self._measure_snap: dict[str, Any] | None = None
        self._measure_t = 0.0
        self._errors0: dict[str, int] = {}
        self.failed_at: int | None = None
        self.started_at = time.time()

    def begin(self, i: int, stats: Any) -> None:
        self.current = i
        self._start_snap = snapshot(stats)
        self._errors0 = error_counts(stats)
        self._measure_snap = None
        self.records.append({"index": i, "name": self.plan.steps[i].name,
                             "t_start": time.time(), "t_measure": None, "t_end": None})
        if self.plan.steps[i].warmup_s <= 0:
            self.measure(stats)

    def measure(self, stats: Any) -> None:
        if self._measure_snap is None and self.records:
            self._measure_snap = snapshot(stats)
            self._measure_t = time.time()
            self.records[-1]["t_measure"] = self._measure_t

    def end(self, stats: Any, users: int) -> bool:
        """Close the current step; True when it passed (or has no SLO to judge)."""
        if self.current is None or not self.records:
            return True
        rec = self.records[-1]
        now = time.time()
        snap = snapshot(stats)
        if self._measure_snap is None:  # a step shorter than its warm-up: measure it all
            self._measure_snap, self._measure_t = self._start_snap, rec["t_start"]
            rec["t_measure"] = self._measure_t
        secs = max(now - self._measure_t, 1e-3)
        win = window(snap, self._measure_snap, secs)
        rec.update(t_end=now, seconds=secs, users=users,
                   stats={k: {"requests": s.requests, "failures": s.failures, "hist": s.hist}
                          for k, s in win.items()},
                   errors={k: v - self._errors0.get(k, 0)
                           for k, v in error_counts(stats).items()
                           if v - self._errors0.get(k, 0) > 0})
        passed = True
        if self.slo is not None:
            verdict = judge(win, self.slo)
            passed = verdict.passed
            rec["passed"], rec["breaches"] = verdict.passed, verdict.breaches
            if not passed and self.failed_at is None:
                self.failed_at = self.current
        self.current = None
        self.write()
        return passed

    def write(self) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        doc = {"shape": self.plan.shape, "started_at": self.started_at,
               "written_at": time.time(), "failed_at": self.failed_at, "steps": self.records}
        tmp = self.out / "steps.json.tmp"
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.out / "steps.json")
