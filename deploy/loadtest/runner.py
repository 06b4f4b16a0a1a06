"""Run a plan with Locust in its own processes: a master and N workers (or one local process).

Locust is never imported here: it monkey-patches gevent at import time, so it runs as
`python -m locust -f loadgen/locustfile.py` child processes. Every process is started and
stopped here by its own pid, and the whole run is bounded: past the plan's duration plus a
margin, the processes are stopped. While it runs, the CPU the generator uses is sampled with
psutil (how much of the machine the load generator needs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from freehold.app.devstack import free_port
from freehold.loadgen.shapes import LoadPlan

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadgen" / "locustfile.py"
MARGIN_S = 45.0  # start-up, the last step's stop and report writing


class RunError(RuntimeError):
    """Locust could not run the plan; the message says what to look at."""


@dataclass
class RunOutput:
    out_dir: Path
    exit_codes: dict[str, int | None]
    wall_s: float
    generator_cpu: dict[str, float] = field(default_factory=dict)  # mean/max cores used
    timed_out: bool = False

    @property
    def csv_prefix(self) -> Path:
        return self.out_dir / "locust"

    @property
    def html(self) -> Path:
        return self.out_dir / "report.html"

    @property
    def steps_json(self) -> Path:
        return self.out_dir / "steps.json"


def locust_cmd(plan: LoadPlan, out: Path, role: str, *, master_port: int = 0, workers: int = 0,
               master_host: str = "127.0.0.1", python: str = sys.executable,
               locustfile: Path = LOCUSTFILE) -> list[str]:
    """The command line of one Locust process: 'local', 'master' or 'worker'."""
    cmd = [python, "-m", "locust", "-f", str(locustfile), "--headless", "--host", plan.host,
           "--loglevel", "WARNING", "--logfile", str(out / f"locust-{role}.log")]
    if role == "worker":
        return [*cmd, "--worker", "--master-host", master_host, "--master-port",
                str(master_port)]
    cmd += ["--csv", str(out / "locust"), "--csv-full-history", "--html",
            str(out / "report.html"), "--exit-code-on-error", "0", "--stop-timeout", "5",
            "--only-summary"]
    if role == "master":
        cmd += ["--master", "--master-bind-host", master_host, "--master-bind-port",
                str(master_port), "--expect-workers", str(workers),
                "--expect-workers-max-wait", "60"]
    return cmd


def _stop(p: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        p.wait(timeout=5)


def run_local(plan: LoadPlan, plan_path: Path, out: Path, *, workers: int = 1,
              extra_env: dict[str, str] | None = None,
              on_tick: Callable[[float, float], None] | None = None) -> RunOutput:
    """Run the plan with local processes: `workers` = 0 means one process doing everything."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FREEHOLD_LT_PLAN": str(plan_path),
           **(extra_env or {})}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    port = free_port()

    def start(name: str, cmd: list[str]) -> None:
        log = (out / f"{name}.out").open("ab")
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    t0 = time.monotonic()
    deadline = t0 + plan.duration_s + MARGIN_S + 5 * workers
    main = "master" if workers else "local"
    samples: list[float] = []
    timed_out = False
    try:
        start(main, locust_cmd(plan, out, main, master_port=port, workers=workers))
        for i in range(workers):
            start(f"worker{i + 1}", locust_cmd(plan, out, "worker", master_port=port))
        watched = {n: psutil.Process(p.pid) for n, p in procs.items()}
        for w in watched.values():
            with contextlib.suppress(psutil.Error):
                w.cpu_percent(None)
        while procs[main].poll() is None:
            now = time.monotonic()
            if now > deadline:
                timed_out = True
                break
            time.sleep(1.0)
            total = 0.0
            for w in watched.values():
                with contextlib.suppress(psutil.Error):
                    total += w.cpu_percent(None)
            samples.append(total / 100.0)
            if on_tick:
                on_tick(now - t0, plan.duration_s)
    finally:
        # the master tells its workers to quit; give them a moment, then stop what is left
        for name in sorted(procs, key=lambda n: n == main):
            _stop(procs[name], timeout=15.0 if name == main else 10.0)
    codes = {n: p.returncode for n, p in procs.items()}
    busy = samples[2:] or samples  # skip the start-up seconds
    cpu = {"mean_cores": round(sum(busy) / len(busy), 3) if busy else 0.0,
           "max_cores": round(max(busy), 3) if busy else 0.0, "processes": len(procs)}
    if not (out / "steps.json").exists():
        tail = _tail(out / f"{main}.out") or _tail(out / f"locust-{main}.log")
        raise RunError(f"Locust wrote no step results (exit {codes.get(main)}): {tail} — see "
                       f"{out}")
    return RunOutput(out_dir=out, exit_codes=codes, wall_s=time.monotonic() - t0,
                     generator_cpu=cpu, timed_out=timed_out)


def _tail(path: Path, lines: int = 3) -> str:
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])
