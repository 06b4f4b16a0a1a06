"""Capacity planning: accounts -> servers per role, storage and cost, every input with its source.

    from deploy.capacity import load_profile, plan_capacity
    plan = plan_capacity(10_000_000, load_profile())      # loadtests/profiles/default.yaml
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

from deploy.capacity.crosscheck import crosscheck_notes
from deploy.capacity.inputs import CapacityProfileError, Input, app_inputs, read_doc
from deploy.capacity.model import Plan, Profile, app_cores, load_profile, plan_capacity
from loadtests.traffic import ProfileError, load_model

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
             headroom: float = 1.0) -> Plan:
    """The plan for `accounts` (a profile path, an already loaded Profile, or the default)."""
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    plan = plan_capacity(accounts, prof, headroom)
    plan.notes += crosscheck_notes(plan)
    return plan


def plan_with_at_least(accounts: int, min_servers: int, profile: Path | str | None = None,
                       headroom: float = 1.0, max_headroom: float = 100.0) -> Plan:
    """The plan with the smallest headroom (a multiple of 0.5 from `headroom`) whose servers
    reach `min_servers`; CapacityProfileError when even `max_headroom` does not."""
    prof = load_profile(profile)
    h = headroom
    plan = plan_capacity(accounts, prof, h)
    while plan.total_servers < min_servers:
        h += 0.5
        if h > max_headroom:
            raise CapacityProfileError(f"--min-servers: {min_servers} not reached below "
                                       f"headroom x{max_headroom:g} — ask for fewer servers")
        plan = plan_capacity(accounts, prof, h)
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


__all__ = ["CapacityProfileError", "Input", "Plan", "Profile", "app_cores_for", "load_profile",
           "parse_accounts", "plan_capacity", "plan_for", "plan_with_at_least", "servers_per_role"]
