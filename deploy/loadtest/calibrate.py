"""`freehold loadtest calibrate`: the requests one app server serves within the SLO, per core.

Load rises step by step (users x factor, the profile's action mix, think times compressed) on ONE
app server, addressed directly (not through the load balancer), until a step breaks the SLO.
While it runs, the app server's own CPU is sampled (deploy/loadtest/cpusample.py: psutil over
the local app's process tree, or systemd's accounting of the app's unit over SSH), with what
else used the machine's CPU; each step gets its app CPU-seconds over its measured window
(deploy/loadtest/cpuaccount.py).

The figure the capacity plan reads, `rps_per_core` in `loadgen/measurements/calibration.json`
(the profile's `app_rps_per_core.measured`), is requests per app CPU-second at the highest step
within the SLO: what one fully busy app core serves. Dividing by the server's nominal cores
instead (`rps_per_nominal_core`, kept for comparison) counts every core the server has, idle or
busy with something else: on a machine where the generator, PostgreSQL and Redis share the
cores with the app it says as much about them as about the app. Only when the app's CPU could
not be read is `rps_per_core` the nominal figure, and `rps_per_core_basis` says so. The file
starts with the run header (deploy.provenance: commit, settings, durability of the servers).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from freehold.deploy.loadtest.analysis import StepResult, highest_passing, run_requests
from freehold.deploy.loadtest.cpuaccount import (
    APP,
    MACHINE,
    MIN_APP_CPU_S,
    CpuSeries,
    steps_cpu,
)
from freehold.deploy.loadtest.cpusample import (
    CpuRecorder,
    LocalSampler,
    Sampler,
    ServerSampler,
    local_app_pid,
    local_peers,
)
from freehold.deploy.loadtest.execute import Outcome, execute
from freehold.deploy.loadtest.runner import MARGIN_S
from freehold.deploy.loadtest.target import ROOT, Target
from freehold.deploy.provenance import DEPLOYED_DURABILITY, commit_state, run_header
from freehold.loadgen import shapes
from freehold.loadgen.slo import Slo
from freehold.loadgen.traffic import TrafficModel

CALIBRATION = ROOT / "loadgen" / "measurements" / "calibration.json"
# a spec's servers run what the roles deploy; a bare URL's servers are unknown to us
DURABILITY_OF_URL = ("not read: the target is a URL; whoever started its servers records "
                     "their durability here (benchmarks/locust_bench.py does)")


def per_core_figure(best: StepResult | None, best_cpu: Mapping[str, Any] | None,
                    server_cores: float, cpu: CpuSeries) -> tuple[float, str]:
    """(rps_per_core, the sentence saying what it is): requests per app CPU-second at the
    highest step within the SLO when the app's CPU was read there, else per nominal core."""
    if best is None:
        return 0.0, "no step passed the SLO: no figure"
    at_best = best_cpu or {}
    per_cpu, app_cpu = at_best.get("rps_per_app_cpu"), at_best.get("app_cpu_s")
    if per_cpu:
        return float(per_cpu), (
            f"requests per app CPU-second at {best.name}, the highest step within the SLO "
            f"({best.requests:,} requests / {app_cpu} app CPU-seconds; the app was "
            f"{at_best.get('app_cores_busy')} cores busy), by the app's own CPU accounting: "
            f"{cpu.method}")
    if app_cpu is not None:
        why = (f"its {app_cpu} CPU-seconds there are too few to divide by (under "
               f"{MIN_APP_CPU_S} s: lengthen the steps)")
    else:
        why = ("the app's own CPU was not measured at that step ("
               + ("; ".join(cpu.errors[:2]) or cpu.method or "no samples") + ")")
    return (round(best.rps / server_cores, 1) if server_cores else 0.0), (
        f"requests/s per NOMINAL core ({best.rps:.1f} req/s / {server_cores:g} cores at "
        f"{best.name}): {why}")


def what_else_ran(outcome: Outcome, cpu: CpuSeries, best_cpu: Mapping[str, Any] | None
                  ) -> dict[str, Any]:
    loads = [s.load_1m for s in cpu.samples if s.load_1m is not None]
    return {
        "cores_busy_at_best_step": (best_cpu or {}).get("cores_busy"),
        "generator_cpu": outcome.run.generator_cpu,
        "machine_cpus": cpu.cpus,
        "load_avg_1m": {"start": loads[0], "end": loads[-1], "max": max(loads)}
        if loads else None,
        "note": "cores busy over the best step's measured window, per group of "
                "cpu_accounting.groups; `unnamed` is the machine's busy cores the named groups "
                "leave (the load generator, other work on the machine)",
    }


def calibration_doc(outcome: Outcome, target: Target, server_url: str, server_cores: float,
                    model: TrafficModel, settings: dict[str, Any] | None = None,
                    code: dict[str, object] | None = None, cpu: CpuSeries | None = None
                    ) -> dict[str, Any]:
    res = outcome.result
    cpu = cpu or CpuSeries(method="not measured: no CPU sampler ran")
    accounted = steps_cpu(res.steps, cpu)
    best = highest_passing(res)
    best_cpu = accounted[res.steps.index(best)] if best else None
    broke = res.first_failed
    rps = best.rps if best else 0.0
    per_core, basis = per_core_figure(best, best_cpu, server_cores, cpu)
    doc: dict[str, Any] = {
        "run": run_header(__file__, settings or {},
                          DURABILITY_OF_URL if target.spec is None else DEPLOYED_DURABILITY,
                          code),
        "rps_per_server": round(rps, 1),
        "rps_per_core": per_core,
        "rps_per_core_basis": basis,
        "rps_per_nominal_core": round(rps / server_cores, 1) if server_cores else 0.0,
        "app_cores_busy": (best_cpu or {}).get("app_cores_busy"),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": {"label": target.label, "server_url": server_url,
                   "server_cores": server_cores},
        "slo": res.slo.to_json(),
        "slo_broken": broke is not None,
        "limited_by": (f"SLO broke at {broke.name}: {'; '.join(broke.breaches[:3])}" if broke
                       else "SLO never broke within the ramp: the figure is a lower bound"),
        "best_step": best.to_json() | {"endpoints": None} | (best_cpu or {}) if best else None,
        "steps": [{"name": s.name, "users": s.users, "requests": s.requests,
                   "rps": round(s.rps, 1), "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
                   "error_rate": round(s.error_rate, 5), "passed": s.passed, **c}
                  for s, c in zip(res.steps, accounted, strict=True)],
        # every request of the run: the steps' counts leave out their warm-ups
        "requests_total": run_requests(Path(f"{outcome.run.csv_prefix}_stats.csv")),
        "mix": res.plan.weights,
        "profile": str(model.profile),
        "cpu_accounting": cpu.to_json(),
        "what_else_ran": what_else_ran(outcome, cpu, best_cpu),
        "generator_cpu": outcome.run.generator_cpu,
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "report": {"html": str(outcome.run.html), "chart": str(outcome.chart),
                   "summary": str(outcome.out_dir / "summary.json")},
        "source": "freehold loadtest calibrate (Locust, the profile's action mix, one app "
                  "server addressed directly)",
    }
    return doc


def cpu_sampler(target: Target, server: int, *, app_pid: int | None = None,
                watch: Mapping[str, Sequence[int]] | None = None, remote: bool = False
                ) -> tuple[Sampler | None, str]:
    """What reads the app server's CPU: for a spec, its app server's units over SSH (and the
    units of the other roles it carries); for a URL on this machine, the process tree of
    `app_pid` (else of the process listening on the URL's port), the local servers it is
    connected to (its PostgreSQL, Redis) and the `watch` groups (name: root pids, which win
    over a found one of the same name). (None, why) when nothing can read it."""
    if target.spec is not None:
        from freehold.roles.registry import deployed

        srv = target.spec.servers_with_role("app")[server]
        groups = {APP if name == "app" else name: list(r.units)
                  for name in srv.roles if (r := deployed(name)) is not None and r.units}
        return ServerSampler(srv, target.ssh_settings(), groups,
                             clock="server" if remote else "local"), ""
    url = target.app_urls[server]
    how = f"given pid {app_pid}"
    if app_pid is None:
        app_pid, why = local_app_pid(url)
        if app_pid is None:
            return None, f"not measured: {why} (give --app-pid)"
        how = f"pid {app_pid}, listening for {url}"
    # the servers the app talks to on this machine, unless named with --watch
    found = {g: p for g, p in local_peers(app_pid).items() if g not in (APP, MACHINE)}
    others = {**found, **(watch or {})}
    groups: dict[str, Sequence[int]] = {APP: [app_pid], **others}
    what = {APP: f"process tree of {how}",
            **{g: f"process trees of pids {', '.join(map(str, p))}"
                  + (" (given with --watch)" if g in (watch or {}) else
                     " (a local server the app is connected to)")
               for g, p in others.items()}}
    return LocalSampler(groups, what, "psutil over the app's process tree on this machine "
                        "(user + system CPU, exited children included)"), ""


def calibrate(target: Target, model: TrafficModel, roster: Path, slo: Slo, out_dir: Path, *,
              duration_s: float, workers: int = 1, server: int = 0, start_users: int = 4,
              factor: float = 1.6, steps: int = 10, think_scale: float = 0.02,
              write_to: Path | None = CALIBRATION, remote: bool = False,
              app_pid: int | None = None, watch: Mapping[str, Sequence[int]] | None = None,
              on_tick: Callable[[float, float], None] | None = None
              ) -> tuple[dict[str, Any], Outcome]:
    code = commit_state()  # the code this run measures, before it runs
    server_url = target.app_urls[server]
    cores = float(target.app_server_cores[server]) if target.app_server_cores else 1.0
    if target.spec is None:  # a URL: its cores are what --app-cores says
        cores = target.app_cores
    plan = shapes.calibrate(model, server_url, duration_s, start_users=start_users,
                            factor=factor, steps=steps, think_scale=think_scale)
    sampler, why = cpu_sampler(target, server, app_pid=app_pid, watch=watch, remote=remote)
    recorder = CpuRecorder(sampler, max_s=plan.duration_s + MARGIN_S + 120) if sampler else None
    with recorder or contextlib.nullcontext():
        outcome = execute(plan, target, roster, slo, out_dir, workers=workers, remote=remote,
                          on_tick=on_tick)
    settings = {"duration_s": duration_s, "workers": workers, "server": server,
                "start_users": start_users, "factor": factor, "steps": steps,
                "think_scale": think_scale, "remote": remote}
    cpu = recorder.series if recorder else CpuSeries(method=why)
    doc = calibration_doc(outcome, target, server_url, cores, model, settings, code, cpu)
    (out_dir / "calibration.json").write_text(json.dumps(doc, indent=1))
    if write_to is not None:
        write_to.parent.mkdir(parents=True, exist_ok=True)
        tmp = write_to.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(write_to)
    return doc, outcome
