"""The app server's own CPU per ramp step of a calibration, and what else used the CPU then.

A sampler (deploy/loadtest/cpusample.py) reads cumulative CPU-seconds of named groups of
processes about once a second while the run goes: `app` (the app server's web processes, the
ones that answer the requests), the other local servers when they are known (`postgres`,
`redis`, the app's background workers) and `machine` (the busy time of all the machine's
cores). A ramp step's CPU is the difference of the counters at its measured window's bounds
(after its warm-up, the same window its requests are counted in), each interpolated linearly
between the two samples around it. Pure arithmetic here: no processes, no SSH.

    rps_per_app_cpu = requests / app CPU-seconds   (req/s per fully busy app core)
    app_cores_busy  = app CPU-seconds / step seconds
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

APP, MACHINE = "app", "machine"
# below this much app CPU in a step the quotient is mostly the counters' 10 ms ticks
MIN_APP_CPU_S = 0.2


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU-seconds per group at unix time `t` (the clock the step records use)."""

    t: float
    cpu_s: Mapping[str, float]
    load_1m: float | None = None


@dataclass
class CpuSeries:
    """The samples of one run, how they were taken, and what went wrong taking them."""

    samples: list[CpuSample] = field(default_factory=list)
    method: str = ""  # how the app's CPU was read (shown in the calibration file)
    groups: dict[str, str] = field(default_factory=dict)  # group -> what it holds
    cpus: int | None = None  # cores of the machine the `machine` group counts
    interval_s: float = 1.0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "groups": self.groups, "cpus": self.cpus,
                "samples": len(self.samples), "interval_s": self.interval_s,
                "first_t": self.samples[0].t if self.samples else None,
                "last_t": self.samples[-1].t if self.samples else None,
                "errors": self.errors[:5], "error_count": len(self.errors)}


def cpu_at(samples: Sequence[CpuSample], group: str, t: float) -> float | None:
    """The group's cumulative CPU-seconds at `t`, interpolated between the samples around it;
    None when `t` is outside the samples that hold the group (no extrapolation)."""
    pts = [(s.t, s.cpu_s[group]) for s in samples if group in s.cpu_s]
    if not pts or t < pts[0][0] or t > pts[-1][0]:
        return None
    for (t0, c0), (t1, c1) in zip(pts, pts[1:], strict=False):
        if t0 <= t <= t1:
            return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)
    return pts[-1][1]  # a single sample exactly at t


def cpu_between(samples: Sequence[CpuSample], group: str, t0: float, t1: float
                ) -> float | None:
    a, b = cpu_at(samples, group, t0), cpu_at(samples, group, t1)
    return None if a is None or b is None else max(0.0, b - a)


def load_at(samples: Sequence[CpuSample], t: float) -> float | None:
    """The 1-minute load average of the sample nearest `t`."""
    got = [s for s in samples if s.load_1m is not None]
    return min(got, key=lambda s: abs(s.t - t)).load_1m if got else None


def step_cpu(samples: Sequence[CpuSample], t0: float, t1: float, requests: int
             ) -> dict[str, Any]:
    """One step's accounting over its measured window [t0, t1] with `requests` requests."""
    secs = t1 - t0
    groups = sorted({g for s in samples for g in s.cpu_s})
    used = {g: cpu_between(samples, g, t0, t1) for g in groups}
    app = used.get(APP)
    out: dict[str, Any] = {"app_cpu_s": _r(app), "app_cores_busy": None,
                           "rps_per_app_cpu": None}
    if app is not None and secs > 0:
        out["app_cores_busy"] = round(app / secs, 3)
        if app >= MIN_APP_CPU_S:
            out["rps_per_app_cpu"] = round(requests / app, 1)
    cores = {g: round(v / secs, 3) for g, v in used.items() if v is not None and secs > 0}
    if MACHINE in cores:  # what the named groups leave: the generator, other work
        named = sum(v for g, v in cores.items() if g != MACHINE)
        cores["unnamed"] = round(max(0.0, cores[MACHINE] - named), 3)
    out["cores_busy"] = cores
    out["load_avg_1m"] = load_at(samples, t1)
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def steps_cpu(steps: Sequence[Any], series: CpuSeries) -> list[dict[str, Any]]:
    """`step_cpu` of each analysed step (deploy.loadtest.analysis.StepResult: its measured
    window is t_measure..t_end, the window its requests were counted in)."""
    return [step_cpu(series.samples, s.t_measure, s.t_end, s.requests) for s in steps]
