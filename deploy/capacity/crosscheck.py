"""Other measurements that bear on the plan, read defensively (their writers keep changing them).

`benchmarks/results/app_hotpaths.json` (benchmarks/app_hotpaths.py) measures the real app's
home feed on this machine: when its per-core figure differs a lot from the one the plan uses,
the plan says what the app tier would need at the measured figure. A measurement file that does
not say it ran with production durability (its `run` header, deploy.provenance) is named too:
without fsync the database's disk cost is missing from its figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from freehold.deploy.capacity.inputs import ROOT
from freehold.deploy.capacity.layout import n_plus_one

HOTPATHS = ROOT / "benchmarks" / "results" / "app_hotpaths.json"


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def hotpaths_per_core(path: Any = HOTPATHS) -> tuple[float, str] | None:
    """(home feed req/s per app core, when) from the app benchmark, or None."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, Mapping):
        return None
    when = str(doc.get("measured_at") or "")[:10] or "an unknown date"
    per_cpu = _num(doc.get("home_feed_rps_per_app_core"))
    if per_cpu and per_cpu > 0:
        return per_cpu, when
    feed = doc.get("home_feed")
    rps = _num(feed.get("rps")) if isinstance(feed, Mapping) else None
    cores = _num(doc.get("app_cores")) or 1.0
    if not rps or rps <= 0 or cores <= 0:
        return None
    return rps / cores, when


def _production(durability: Any) -> bool:
    from freehold.app.devstack import PG_DURABILITY, REDIS_DURABILITY

    if isinstance(durability, str):  # deployed servers (a lab, production): the roles' settings
        return durability.startswith("production")
    if not isinstance(durability, Mapping):
        return False
    want = {"postgres": PG_DURABILITY["production"], "redis": REDIS_DURABILITY["production"]}
    return all(durability.get(k) == v for k, v in want.items() if k in durability) \
        and any(k in durability for k in want)


def durability_notes(plan: Any) -> list[str]:
    """A note per measurement file the plan uses that was not measured with production
    durability (or does not say)."""
    notes = []
    for shown in dict.fromkeys(i.file for i in plan.inputs if i.kind == "measured" and i.file):
        try:
            doc = json.loads((ROOT / shown).read_text())
        except (OSError, ValueError):
            continue
        run = doc.get("run") if isinstance(doc, Mapping) else None
        got = run.get("durability") if isinstance(run, Mapping) else None
        if not _production(got):
            said = f"it says {json.dumps(got)}" if got else "it does not say which"
            notes.append(f"{shown}: not measured with production durability ({said}; "
                         "production: fsync, synchronous_commit, full_page_writes on, Redis "
                         "AOF), so its figures may be optimistic — measure again")
    return notes


def crosscheck_notes(plan: Any) -> list[str]:
    return durability_notes(plan) + _hotpaths_notes(plan)


def _hotpaths_notes(plan: Any) -> list[str]:
    got = hotpaths_per_core()
    used = next((i for i in plan.inputs if i.name == "app_rps_per_core"), None)
    if got is None or used is None:
        return []
    per_core, when = got
    if 0.5 <= per_core / used.value <= 2:
        return []
    app = plan.roles["app"]
    cls = plan.classes[app.server_class]
    util = next((i.value for i in plan.inputs if i.name == "app_headroom"), 1.0)
    rps = plan.planned_rps / plan.headroom  # the plan's own load, without extra headroom
    need = n_plus_one(math.ceil(rps / (per_core * util) / cls.cores), len(plan.layout.sites))
    advice = ("run `freehold loadtest calibrate` to settle it" if used.kind != "measured" else
              "the plan keeps the calibrated figure: it carries the whole action mix within "
              "the SLO's p99, the benchmark the home feed alone per CPU-second")
    return [f"cross-check: benchmarks/results/app_hotpaths.json measured the home feed alone at "
            f"{per_core:,.0f} req/s per app core on {when}; the plan uses {used.value:,.0f} "
            f"({used.kind}) — at the benchmark's figure the app tier would need {need} servers "
            f"without extra headroom (this plan has {app.servers}): {advice}"]
