"""Locust entry point: `locust -f loadgen/locustfile.py` (the runner adds --headless etc.).

The shape follows the plan in FREEHOLD_LT_PLAN (built by `freehold loadtest run|calibrate` from
the capacity profile): at each step it sets the user count, tells the workers the step (its
action mix), and the recorder snapshots the stats; a calibration stops at the first step that
breaks the SLO.
"""

from __future__ import annotations

from typing import Any

import locust.runners
from locust import LoadTestShape, events

from freehold.loadgen.recorder import Recorder
from freehold.loadgen.users import PLAN, STATE, Member

__all__ = ["Member", "PlanShape"]

# A worker busy at 100% of its core (the point of a load test) can miss Locust's 1 s heartbeats
# for a few seconds; with the default 3 missed beats the master declared the last worker missing
# and stopped the whole run (seen on a loaded 1-core loadgen). 20 s still catches a dead worker.
locust.runners.HEARTBEAT_LIVENESS = 20


class PlanShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.recorder = Recorder(PLAN)
        self.stop = False

    def _broadcast(self, i: int) -> None:
        from locust.runners import MasterRunner

        STATE["step"] = i
        if isinstance(self.runner, MasterRunner):
            self.runner.send_message("freehold_step", {"index": i})

    def tick(self) -> tuple[int, float] | None:
        if not PLAN.steps or self.runner is None:
            return None
        stats = self.runner.stats
        t = self.get_run_time()
        i = PLAN.step_at(t)
        rec = self.recorder
        if rec.current is not None and i != rec.current:
            passed = rec.end(stats, self.runner.user_count)
            if not passed and PLAN.stop_on_fail:
                self.stop = True
        if self.stop or i is None:
            return None
        if rec.current is None:
            rec.begin(i, stats)
            self._broadcast(i)
        step = PLAN.steps[i]
        if t >= PLAN.step_start(i) + step.warmup_s:
            rec.measure(stats)
        return step.users, step.spawn_rate


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    shape = environment.shape_class
    if isinstance(shape, PlanShape) and shape.recorder.current is not None and environment.runner:
        shape.recorder.end(environment.runner.stats, environment.runner.user_count)
