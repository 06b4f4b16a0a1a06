"""Capacity planning: accounts -> servers per role, storage and cost, every input with its source.

    from freehold.deploy.capacity import load_profile, plan_capacity
    plan = plan_capacity(10_000_000, load_profile())      # loadgen/profiles/default.yaml
    plan.servers_per_role()                               # {"app": 6, "worker": 2, ...}

Also used by other commands:
- `app_cores_for(accounts, profile=...)`: the production app cores the load tests scale to;
- `servers_per_role(accounts, profile=...)`: `freehold migrate plan` sizes from it.
Modules: `inputs` (profile numbers, measurement files), `layout` (sites, N+1), `model` (the
calculation), `emit` (a cluster spec from a plan), `crosscheck` (other measurements).
"""

from __future__ import annotations

import re
from pathlib import Path

from freehold.deploy.capacity.crosscheck import crosscheck_notes
from freehold.deploy.capacity.inputs import CapacityProfileError, Input, app_inputs, read_doc
from freehold.deploy.capacity.model import (
    CapacityPlan,
    Profile,
    app_cores,
    load_profile,
    plan_capacity,
)
from freehold.loadgen.traffic import ProfileError, load_model

_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}


def parse_accounts(text: str) -> int:
    """'10M', '2.5m', '250k', '1500' -> accounts; ValueError with the fix otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMbB]?)\s*", text or "")
    if not m:
        raise ValueError(f"{text!r} is not a number of accounts — give e.g. 250k, 4M or 10M")
    n = int(round(float(m.group(1)) * _UNITS[m.group(2).lower()]))
    if n <= 0:
        raise ValueError(f"{text!r}: give a number of accounts > 0, e.g. 10M")
    return n


def plan_for(accounts: int, profile: Path | str | Profile | None = None,
             headroom: float = 1.0, pessimistic: bool = False) -> CapacityPlan:
    """The plan for `accounts` (a profile path, an already loaded Profile, or the default);
    `pessimistic`: see load_profile."""
    prof = profile if isinstance(profile, Profile) else load_profile(profile, pessimistic)
    plan = plan_capacity(accounts, prof, headroom)
    plan.notes[:0] = pessimistic_notes(plan)
    plan.notes += crosscheck_notes(plan)
    return plan


def pessimistic_notes(plan: CapacityPlan) -> list[str]:
    """The loud first notes of a plan made with pessimistic stand-ins for measurements."""
    return [f"PESSIMISTIC: {i.name} = {i.value:g} {i.unit} is a cited stand-in, not a "
            f"measurement of this app — measure it (`freehold loadtest calibrate SPEC|URL`) "
            f"before buying servers by this plan" for i in plan.inputs if i.pessimistic]


def plan_with_at_least(accounts: int, min_servers: int, profile: Path | str | None = None,
                       headroom: float = 1.0, max_headroom: float = 100.0,
                       pessimistic: bool = False) -> CapacityPlan:
    """The plan with the smallest headroom (on a 0.1 grid from `headroom`) whose servers reach
    `min_servers` (servers never fall as headroom grows: a bisection); CapacityProfileError
    when even `max_headroom` does not reach it."""
    prof = load_profile(profile, pessimistic)

    def at(step: int) -> CapacityPlan:
        return plan_capacity(accounts, prof, round(headroom + step / 10, 1))

    lo, hi = 0, max(0, round((max_headroom - headroom) * 10))
    if at(hi).total_servers < min_servers:
        raise CapacityProfileError(f"--min-servers: {min_servers} not reached below headroom "
                                   f"x{max_headroom:g} — ask for fewer servers")
    while lo < hi:  # smallest step reaching min_servers
        mid = (lo + hi) // 2
        if at(mid).total_servers >= min_servers:
            hi = mid
        else:
            lo = mid + 1
    plan = at(lo)
    plan.notes[:0] = pessimistic_notes(plan)
    plan.notes += crosscheck_notes(plan)
    return plan


def app_cores_for(accounts: int, profile: Path | str | None = None) -> tuple[float, str]:
    """Production app cores for `accounts` (the load per core the plan assumes) and how.
    Needs only the traffic model and app_rps_per_core (app_headroom optional) in the profile;
    a measurement file the profile names is used when present."""
    prof = Path(profile) if profile else None
    try:
        model = load_model(prof)
    except ProfileError as exc:
        raise CapacityProfileError(str(exc)) from exc
    doc = read_doc(model.profile)
    return app_cores(model, accounts, app_inputs(doc, model.profile, required=False))


def servers_per_role(accounts: int, profile: Path | str | None = None) -> dict[str, int]:
    return plan_for(accounts, profile).servers_per_role()


__all__ = ["CapacityProfileError", "Input", "CapacityPlan", "Profile", "app_cores_for",
           "load_profile",
           "parse_accounts", "plan_capacity", "plan_for", "plan_with_at_least", "servers_per_role"]
