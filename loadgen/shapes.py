"""Load shapes as plans: surge, spike, soak and the calibration ramp (pure Python, no Locust).

A plan is a list of timed steps, each with the production accounts it stands for, the requests/s
that means on the target cluster (production peak x scale factor), the Locust users that produce
it, and an optional action mix (the spike adds sign-ups). `loadgen/locustfile.py` turns the
plan into a Locust `LoadTestShape`; `deploy/loadtest` builds and analyses plans.

- surge: a baseline at the peak of `from_accounts` (4 M) scaled to the target, then equal steps up
  to the peak of `to_accounts` (10 M). Marks "4M" and "10M" on the first and the last step.
- spike: baseline at 4 M; then a sign-up flood — the accounts the surge adds in `surge_days`,
  with `flood_day_share` of them arriving on the first day, at the peak-to-average factor —
  on top of the members' traffic; then the load after the flood.
- soak: the 10 M peak held for the whole duration, cut in windows to see drift.
- calibrate: users rising geometrically on one app server until the SLO breaks.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from freehold.loadgen.traffic import ACTION_REQUESTS, SECONDS_PER_DAY, TrafficModel

SHAPES = ("surge", "spike", "soak")
M = 1_000_000


@dataclass
class Scale:
    """Target cluster vs production: simulated accounts = production accounts x factor."""

    factor: float
    target_app_cores: float
    production_app_cores: float
    production_accounts: int
    source: str

    def describe(self) -> str:
        return (f"scale {self.factor:.6g} = {self.target_app_cores:g} target app cores / "
                f"{self.production_app_cores:.4g} production app cores planned for "
                f"{human(self.production_accounts)} accounts ({self.source})")


@dataclass
class Step:
    name: str
    accounts: int  # production accounts this step stands for (0: not an accounts step)
    simulated_accounts: int
    target_rps: float
    users: int
    duration_s: float
    warmup_s: float
    spawn_rate: float
    weights: dict[str, float] | None = None  # None: the plan's mix
    mark: str = ""  # "4M" / "10M": drawn on the chart


@dataclass
class LoadPlan:
    shape: str
    host: str
    steps: list[Step]
    weights: dict[str, float]
    think_min_s: float
    think_max_s: float
    think_scale: float
    zipf_s: float
    scale: Scale | None
    roster: str = ""
    slo: dict[str, Any] = field(default_factory=dict)
    stop_on_fail: bool = False
    out_dir: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.steps)

    def step_at(self, t: float) -> int | None:
        """Index of the step running `t` seconds after the start; None when over."""
        end = 0.0
        for i, s in enumerate(self.steps):
            end += s.duration_s
            if t < end:
                return i
        return None

    def step_start(self, i: int) -> float:
        return sum(s.duration_s for s in self.steps[:i])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LoadPlan:
        d = dict(doc)
        d["steps"] = [Step(**s) for s in d["steps"]]
        d["scale"] = Scale(**d["scale"]) if d.get("scale") else None
        return cls(**d)

    @classmethod
    def load(cls, path: Path | str) -> LoadPlan:
        return cls.from_json(json.loads(Path(path).read_text()))


def human(n: float) -> str:
    if n >= M:
        v = n / M
        return f"{v:.3g}M"
    if n >= 1000:
        return f"{n / 1000:.3g}k"
    return f"{n:.0f}"


def think_scale_for(model: TrafficModel, max_rps: float, max_users: int,
                    response_s: float = 0.02) -> float:
    """Compress think times (never stretch) so the busiest step fits in `max_users` users."""
    q = model.requests_per_action()
    needed = max_rps * (model.think_mean_s + response_s) / q
    if needed <= max_users or model.think_mean_s <= 0:
        return 1.0
    k = (max_users * q / max_rps - response_s) / model.think_mean_s
    return max(k, 0.0)


def _step(name: str, accounts: int, rps: float, model: TrafficModel, scale: Scale,
          think_scale: float, dur: float, warmup: float, prev_users: int,
          weights: dict[str, float] | None = None, mark: str = "") -> Step:
    q_w = model.requests_per_action(weights) if weights else model.requests_per_action()
    per_user = q_w / (model.think_mean_s * think_scale + 0.02)
    users = max(1, math.ceil(rps / per_user))
    ramp = max(1.0, min(5.0, warmup * 0.8))
    rate = max(1.0, abs(users - prev_users) / ramp)
    return Step(name=name, accounts=accounts, simulated_accounts=round(accounts * scale.factor),
                target_rps=round(rps, 3), users=users, duration_s=dur, warmup_s=warmup,
                spawn_rate=round(rate, 2), weights=weights, mark=mark)


def _warmup(dur: float) -> float:
    return round(min(max(dur * 0.3, 1.0), 30.0), 2)


def _base(model: TrafficModel, shape: str, host: str, scale: Scale, think_scale: float) -> LoadPlan:
    return LoadPlan(shape=shape, host=host, steps=[], weights=model.weights(),
                think_min_s=model.think_min_s.value, think_max_s=model.think_max_s.value,
                think_scale=think_scale, zipf_s=model.zipf_s.value, scale=scale)


def surge(model: TrafficModel, scale: Scale, host: str, duration_s: float, *,
          from_accounts: int = 4 * M, to_accounts: int = 10 * M, steps: int = 7,
          max_users: int = 1000) -> LoadPlan:
    steps = max(2, steps)
    accts = [round(from_accounts + (to_accounts - from_accounts) * i / (steps - 1))
             for i in range(steps)]
    top = model.peak_rps(to_accounts) * scale.factor
    ts = think_scale_for(model, top, max_users)
    plan = _base(model, "surge", host, scale, ts)
    # the run is steps + 1 slots: the first step runs one slot longer, its extra slot a lead-in
    # at its load that is not measured. A platform that has been idle answers its first
    # seconds slowly (pools and caches to fill, work queued by what ran before): the CI's lab
    # surge saw p50 1-2 s at 1-4 requests/s for ~13 s after the users arrived, far under
    # what the later, heavier steps carried (p99 0.7-1.1 s), and the first step's measured
    # window caught the end of it (p99 3.2 and 3.6 s: failed)
    dur = duration_s / (steps + 1)
    prev = 0
    for i, a in enumerate(accts):
        mark = human(a) if i in (0, steps - 1) else ""
        lead = dur if i == 0 else 0.0
        st = _step(human(a), a, model.peak_rps(a) * scale.factor, model, scale, ts, dur + lead,
                   _warmup(dur) + lead, prev, mark=mark)
        plan.steps.append(st)
        prev = st.users
    plan.notes.append(f"surge: {human(from_accounts)} -> {human(to_accounts)} accounts at peak, "
                      f"{steps} steps of {dur:.0f} s, the first after a lead-in of {dur:.0f} s "
                      f"at its load (not measured); {scale.describe()}")
    return plan


def signup_rps(model: TrafficModel, from_accounts: int, to_accounts: int,
               flood_day_share: float) -> float:
    """Production sign-ups/s at the flood's peak: the first day's share of the surge's growth."""
    days = model.surge_days.value if model.surge_days else 7.0
    first_day = (to_accounts - from_accounts) * flood_day_share if days >= 1 else (
        to_accounts - from_accounts)
    return first_day / SECONDS_PER_DAY * model.peak_to_average.value


def spike(model: TrafficModel, scale: Scale, host: str, duration_s: float, *,
          from_accounts: int = 4 * M, to_accounts: int = 10 * M, flood_day_share: float = 0.5,
          max_users: int = 1000) -> LoadPlan:
    base_rps = model.peak_rps(from_accounts) * scale.factor
    su_rps = signup_rps(model, from_accounts, to_accounts, flood_day_share) * scale.factor
    # each sign-up action is a POST /accounts plus the newcomer's follows
    su_req = len(ACTION_REQUESTS["signup"])
    base_actions = base_rps / model.requests_per_action()
    share = su_rps / (su_rps + base_actions) if su_rps > 0 else 0.0
    w_flood = model.weights(with_signup=share)
    flood_rps = base_rps + su_rps * su_req
    ts = think_scale_for(model, flood_rps, max_users)
    plan = _base(model, "spike", host, scale, ts)
    d1, d2 = duration_s * 0.25, duration_s * 0.5
    d3 = duration_s - d1 - d2
    a0 = from_accounts
    b = _step("before", a0, base_rps, model, scale, ts, d1, _warmup(d1), 0, mark=human(a0))
    f = _step("sign-up flood", a0, flood_rps, model, scale, ts, d2, _warmup(d2), b.users,
              weights=w_flood)
    after_accounts = round(a0 + (to_accounts - from_accounts) * flood_day_share)
    a = _step("after", after_accounts, model.peak_rps(after_accounts) * scale.factor, model,
              scale, ts, d3, _warmup(d3), f.users)
    plan.steps = [b, f, a]
    plan.notes.append(f"spike: {su_rps:.3g} sign-ups/s on the target ({su_rps / scale.factor:.4g}"
                      f"/s in production: {flood_day_share:.0%} of the {human(to_accounts - a0)}"
                      f" new accounts on day one x peak factor "
                      f"{model.peak_to_average.value:g}); {scale.describe()}")
    return plan


def soak(model: TrafficModel, scale: Scale, host: str, duration_s: float, *,
         accounts: int = 10 * M, windows: int = 4, max_users: int = 1000) -> LoadPlan:
    rps = model.peak_rps(accounts) * scale.factor
    ts = think_scale_for(model, rps, max_users)
    plan = _base(model, "soak", host, scale, ts)
    windows = max(2, windows)
    dur = duration_s / windows
    prev = 0
    for i in range(windows):
        warm = _warmup(dur) if i == 0 else 0.0
        st = _step(f"{human(accounts)} t{i + 1}", accounts, rps, model, scale, ts, dur, warm,
                   prev, mark=human(accounts) if i == 0 else "")
        plan.steps.append(st)
        prev = st.users
    plan.notes.append(f"soak: the {human(accounts)} peak held {duration_s:.0f} s in {windows} "
                      f"windows; {scale.describe()}")
    return plan


def calibrate(model: TrafficModel, host: str, duration_s: float, *, start_users: int = 4,
              factor: float = 1.6, steps: int = 10, think_scale: float = 0.02) -> LoadPlan:
    """Users rising by `factor` per step; the run stops at the first step that breaks the SLO."""
    plan = LoadPlan(shape="calibrate", host=host, steps=[], weights=model.weights(),
                think_min_s=model.think_min_s.value, think_max_s=model.think_max_s.value,
                think_scale=think_scale, zipf_s=model.zipf_s.value, scale=None,
                stop_on_fail=True)
    dur = duration_s / steps
    users = float(start_users)
    prev = 0
    q = model.requests_per_action()
    for i in range(steps):
        u = max(1, round(users))
        rps = u * q / (model.think_mean_s * think_scale + 0.02)
        ramp = max(1.0, min(5.0, dur * 0.25))
        plan.steps.append(Step(name=f"ramp {i + 1}", accounts=0, simulated_accounts=0,
                               target_rps=round(rps, 2), users=u, duration_s=dur,
                               warmup_s=_warmup(dur), spawn_rate=max(1.0, (u - prev) / ramp)))
        prev = u
        users *= factor
    plan.notes.append(f"calibrate: users x{factor:g} per {dur:.0f} s step, think times x"
                      f"{think_scale:g} (the mix is the profile's), stop at the first SLO breach")
    return plan
