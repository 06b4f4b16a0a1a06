"""Per-step results and SLO gates from the recorder's steps.json (pure: no Locust, no I/O apart
from reading the file).

A step passes when every endpoint meets its p99, the error rates stay under the limits and the
step really carried its load (at least `load_reached_min` of its target requests/s). The run
passes when every step passes; the report names the first step that failed.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.loadgen.shapes import LoadPlan, human
from freehold.loadgen.slo import AGGREGATED, EndpointStats, Slo, judge

MIN_EXPECTED_FOR_LOAD_CHECK = 50  # requests a step must expect before its load level is judged


@dataclass
class StepResult:
    index: int
    name: str
    accounts: int
    simulated_accounts: int
    target_rps: float
    users_target: int
    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    p50_ms: int
    p95_ms: int
    p99_ms: int
    passed: bool
    breaches: list[str]
    endpoints: list[EndpointStats]
    mark: str = ""
    t_start: float = 0.0
    t_end: float = 0.0
    t_measure: float = 0.0  # end of the warm-up: the measured window is t_measure..t_end
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "accounts": self.accounts,
                "simulated_accounts": self.simulated_accounts, "target_rps": self.target_rps,
                "users_target": self.users_target, "users": self.users,
                "seconds": round(self.seconds, 2), "requests": self.requests,
                "failures": self.failures, "error_rate": round(self.error_rate, 5),
                "rps": round(self.rps, 2), "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
                "p99_ms": self.p99_ms, "passed": self.passed, "breaches": self.breaches,
                "mark": self.mark, "t_start": self.t_start, "t_measure": self.t_measure,
                "t_end": self.t_end,
                "errors": self.errors, "endpoints": [e.to_json() for e in self.endpoints]}


@dataclass
class RunResult:
    plan: LoadPlan
    steps: list[StepResult]
    slo: Slo
    notes: list[str] = field(default_factory=list)
    run_breaches: list[str] = field(default_factory=list)

    @property
    def first_failed(self) -> StepResult | None:
        return next((s for s in self.steps if not s.passed), None)

    @property
    def passed(self) -> bool:
        complete = len(self.steps) == len(self.plan.steps) or self.plan.stop_on_fail
        return bool(self.steps) and complete and self.first_failed is None and not (
            self.run_breaches)

    def to_json(self) -> dict[str, Any]:
        ff = self.first_failed
        return {"shape": self.plan.shape, "host": self.plan.host, "passed": self.passed,
                "first_failed_step": ff.name if ff else None,
                "scale": self.plan.scale.__dict__ if self.plan.scale else None,
                "think_scale": self.plan.think_scale, "slo": self.slo.to_json(),
                "steps_planned": len(self.plan.steps), "steps_run": len(self.steps),
                "run_breaches": self.run_breaches, "notes": self.plan.notes + self.notes,
                "steps": [s.to_json() for s in self.steps]}


def _endpoint_stats(raw: dict[str, Any], seconds: float) -> dict[str, EndpointStats]:
    return {k: EndpointStats(k, int(v["requests"]), int(v["failures"]),
                             {int(t): int(c) for t, c in v["hist"].items()}, seconds)
            for k, v in raw.items()}


def analyse(plan: LoadPlan, steps_doc: dict[str, Any], slo: Slo) -> RunResult:
    res = RunResult(plan=plan, steps=[], slo=slo)
    for rec in steps_doc.get("steps", []):
        if rec.get("t_end") is None or "stats" not in rec:
            continue  # a step cut off before its end is not judged
        i = int(rec["index"])
        ps = plan.steps[i]
        secs = float(rec.get("seconds") or 0.0)
        stats = _endpoint_stats(rec["stats"], secs)
        verdict = judge(stats, slo)
        agg = stats.get(AGGREGATED) or EndpointStats(AGGREGATED, 0, 0, {}, secs)
        breaches = list(verdict.breaches)
        expected = ps.target_rps * secs
        if (plan.shape != "calibrate" and expected >= MIN_EXPECTED_FOR_LOAD_CHECK
                and agg.rps < slo.load_reached_min * ps.target_rps):
            breaches.append(f"load not reached: {agg.rps:.1f} of {ps.target_rps:.1f} req/s")
        res.steps.append(StepResult(
            index=i, name=ps.name, accounts=ps.accounts,
            simulated_accounts=ps.simulated_accounts, target_rps=ps.target_rps,
            users_target=ps.users, users=int(rec.get("users") or 0), seconds=secs,
            requests=agg.requests, failures=agg.failures, rps=agg.rps, p50_ms=agg.p(0.5),
            p95_ms=agg.p(0.95), p99_ms=agg.p(0.99), passed=not breaches, breaches=breaches,
            endpoints=sorted((s for k, s in stats.items() if k != AGGREGATED),
                             key=lambda s: -s.requests),
            mark=ps.mark, t_start=float(rec.get("t_start") or 0),
            t_end=float(rec.get("t_end") or 0),
            t_measure=float(rec.get("t_measure") or float(rec.get("t_end") or 0) - secs),
            errors=dict(rec.get("errors") or {})))
    if plan.shape == "soak" and len(res.steps) >= 2:
        first, last = res.steps[0].p99_ms, res.steps[-1].p99_ms
        if first > 0 and last / first > slo.soak_p99_drift_max:
            res.run_breaches.append(f"soak: p99 crept from {first} to {last} ms "
                                    f"(> x{slo.soak_p99_drift_max:g})")
        res.notes.append(f"soak: p99 first window {first} ms, last window {last} ms")
    if len(res.steps) < len(plan.steps) and not plan.stop_on_fail:
        res.run_breaches.append(f"only {len(res.steps)} of {len(plan.steps)} steps completed")
    return res


def load_steps(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def run_requests(stats_csv: Path) -> int | None:
    """All the requests a run made, warm-ups included (a step counts only its measured window),
    from the Aggregated row of Locust's final stats (locust_stats.csv); None without it."""
    try:
        with stats_csv.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("Name") == AGGREGATED:
                    return int(row["Request Count"])
    except (OSError, KeyError, ValueError):
        return None
    return None


def highest_passing(res: RunResult) -> StepResult | None:
    """The passing step with the most requests/s (calibration's answer)."""
    ok = [s for s in res.steps if s.passed]
    return max(ok, key=lambda s: s.rps) if ok else None


def step_rows(res: RunResult) -> list[list[str]]:
    """Rows of the per-step table (shared by the CLI table and the HTML summary)."""
    rows = []
    for s in res.steps:
        rows.append([
            s.name + (f" [{s.mark}]" if s.mark and s.mark != s.name else ""),
            human(s.simulated_accounts) if s.simulated_accounts else "-",
            f"{s.users}", f"{s.rps:.1f}" + (f" / {s.target_rps:.1f}" if s.target_rps else ""),
            f"{s.p50_ms}", f"{s.p95_ms}", f"{s.p99_ms}",
            f"{s.failures} ({s.error_rate:.2%})", "pass" if s.passed else "FAIL"])
    return rows


STEP_HEADERS = ["step", "simulated accounts", "users", "req/s (got / target)", "p50 ms",
                "p95 ms", "p99 ms", "errors", "SLO"]
