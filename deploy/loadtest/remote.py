"""Distributed runs on the spec's `loadgen` servers, over SSH (Fabric).

The first loadgen server runs the Locust master; every loadgen server runs one worker per core.
Each server gets a venv with the same Locust version as the operator's machine (installed once),
the load-test modules, the plan and the roster; the processes run under `timeout` (bounded even
if this machine goes away) and are stopped by their pids at the end; the master's CSV, HTML and
steps.json are fetched back into the local run folder.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from freehold.deploy.loadtest.runner import MARGIN_S, RunError, RunOutput
from freehold.deploy.loadtest.target import Target
from freehold.loadgen.shapes import LoadPlan
from freehold.roles.ports import LOCUST_MASTER_PORT

ROOT = Path(__file__).resolve().parents[2]
BASE = "/opt/freehold-loadgen"
MODULES = ("__init__", "users", "locustfile", "recorder", "shapes", "slo", "picks", "payloads",
           "roster", "traffic")
MASTER_PORT = LOCUST_MASTER_PORT


def _cpu_busy(conn: Any) -> tuple[float, float]:
    """(busy, total) jiffies from /proc/stat."""
    out = conn.run("head -1 /proc/stat", hide=True, warn=True, timeout=10).stdout.split()
    vals = [float(x) for x in out[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def locust_wheels() -> Path:
    """The wheels of Locust (the version installed here) and its dependencies for the servers'
    Python, in one tar, built once into the operator's cache (deploy/artifacts/release.py)."""
    from freehold.deploy.artifacts.release import (
        ReleaseError,
        dependency_wheels,
        deps_archive,
        runtime_pins,
    )
    from freehold.deploy.provision.context import default_assets_dir

    cache = default_assets_dir()
    try:
        pins = runtime_pins(("locust", "PyYAML"))
        return deps_archive(cache, dependency_wheels(cache, pins))
    except ReleaseError as exc:
        raise RunError(f"Locust wheels for the loadgen servers: {exc}") from None


RESULT_FILES = ("steps.json", "locust_stats.csv", "locust_stats_history.csv",
                "locust_failures.csv", "locust_exceptions.csv", "report.html", "master.out")


def fetch(conn: Any, remote_dir: str, out: Path, attempts: int = 3) -> list[str]:
    """Copy the run's result files back (a file Locust did not write is skipped); returns one
    line per file that could not be copied for another reason (after `attempts` tries).

    Between tries the connection is closed: Fabric keeps one SFTP client per connection, made
    when the run's files were pushed, and `run()` quietly reconnects a dropped SSH transport
    but leaves that client bound to the dead one, so every later `get` fails with "Socket is
    closed" (a CI run lost its results so). The next `get` opens a fresh transport and client."""
    errors = []
    for name in RESULT_FILES:
        for attempt in range(attempts):
            try:
                conn.get(f"{remote_dir}/{name}", str(out / name))
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                with contextlib.suppress(Exception):
                    conn.close()
                if attempt == attempts - 1:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                else:
                    time.sleep(1)
    return errors


def prepare(conn: Any, run: str) -> None:
    """A venv with this machine's Locust version, installed from wheels pushed from here (the
    servers never reach PyPI), once; then this run's load-test modules."""
    want = version("locust")
    venv = f"{BASE}/venv"
    have = conn.run(f"{venv}/bin/python -m locust --version 2>/dev/null", hide=True, warn=True,
                    timeout=60).stdout
    if f"locust {want}" not in have:
        archive = locust_wheels()
        conn.run(f"mkdir -p {BASE}/wheels", hide=True, timeout=30)
        conn.put(str(archive), f"{BASE}/wheels/{archive.name}")
        r = conn.run(f"cd {BASE}/wheels && tar -xf {archive.name} && "
                     f"(test -x {venv}/bin/python || python3 -m venv {venv}) && "
                     f"{venv}/bin/pip install -q --no-index --find-links {BASE}/wheels "
                     f"'locust=={want}' PyYAML && rm -f {BASE}/wheels/*.whl", hide=True,
                     warn=True, timeout=900)
        if not r.ok:
            raise RunError(f"{conn.host}: installing Locust {want} failed: "
                           f"{(r.stderr or r.stdout).strip()[-200:]} — the loadgen needs "
                           "python3-venv (roles/base installs it)")
    # the modules import each other as freehold.loadgen.*: `freehold` is a namespace (no
    # __init__.py) under the run's folder, which is the workers' PYTHONPATH
    conn.run(f"mkdir -p {run}/freehold/loadgen {run}/out", hide=True, timeout=30)
    for m in MODULES:
        conn.put(str(ROOT / "loadgen" / f"{m}.py"), f"{run}/freehold/loadgen/{m}.py")


def run_remote(plan: LoadPlan, plan_path: Path, out: Path, target: Target, *,
               on_tick: Callable[[float, float], None] | None = None) -> RunOutput:
    from freehold.deploy.ssh import connection

    servers = target.loadgen
    if not servers:
        raise RunError(f"{target.label}: no loadgen server in the spec")
    ssh = target.ssh_settings()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    run = f"{BASE}/run-{stamp}"
    master = servers[0]
    remote_plan = LoadPlan.from_json(plan.to_json())
    remote_plan.roster = f"{run}/roster.json"
    remote_plan.out_dir = f"{run}/out"
    local_plan = out / "plan-remote.json"
    remote_plan.save(local_plan)
    bound = int(plan.duration_s + MARGIN_S + 60)
    conns = {s.name: connection(s, ssh) for s in servers}
    pids: dict[str, list[str]] = {s.name: [] for s in servers}
    workers = sum(max(1, s.cores) for s in servers)
    t0 = time.monotonic()
    timed_out = False
    try:
        cpu0 = {}
        for s in servers:
            c = conns[s.name]
            prepare(c, run)
            c.put(str(local_plan), f"{run}/plan.json")
            c.put(str(Path(plan.roster)), f"{run}/roster.json")
            cpu0[s.name] = _cpu_busy(c)
        py = f"{BASE}/venv/bin/python -m locust -f {run}/freehold/loadgen/locustfile.py --headless"
        env = f"cd {run} || exit 1; env FREEHOLD_LT_PLAN={run}/plan.json PYTHONPATH={run}"

        def start(c: Any, name: str, args: str, log: str) -> None:
            # only the Locust command goes to the background, every stream redirected, so the
            # SSH session ends at once (a backgrounded `cd && …` list would hold it open)
            cmd = (f"{env} nohup timeout {bound} {py} --host {shlex.quote(plan.host)} {args}"
                   f" > {run}/out/{log} 2>&1 < /dev/null & echo $!")
            r = c.run(cmd, hide=True, warn=True, timeout=30)
            if not r.ok or not r.stdout.strip().isdigit():
                raise RunError(f"{name}: starting Locust failed: "
                               f"{(r.stderr or r.stdout).strip()[-200:]}")
            pids[name].append(r.stdout.strip())

        start(conns[master.name], master.name,
              f"--master --master-bind-host 0.0.0.0 --master-bind-port {MASTER_PORT}"
              f" --expect-workers {workers} --expect-workers-max-wait 120"
              f" --csv {run}/out/locust --csv-full-history --html {run}/out/report.html"
              " --exit-code-on-error 0 --stop-timeout 5 --only-summary --loglevel WARNING",
              "master.out")
        for s in servers:
            host = "127.0.0.1" if s.name == master.name else master.private_address
            for i in range(max(1, s.cores)):
                start(conns[s.name], s.name, f"--worker --master-host {host} --master-port "
                      f"{MASTER_PORT} --loglevel WARNING", f"worker-{s.name}-{i}.out")
        mpid = pids[master.name][0]
        deadline = t0 + bound + 30
        while True:
            alive = conns[master.name].run(f"kill -0 {mpid}", hide=True, warn=True, timeout=15)
            if not alive.ok:
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(2)
            if on_tick:
                on_tick(time.monotonic() - t0, plan.duration_s)
        cores_used = []
        for s in servers:
            b1, t1 = _cpu_busy(conns[s.name])
            b0, tt0 = cpu0[s.name]
            if t1 > tt0:
                cores_used.append((b1 - b0) / (t1 - tt0) * max(1, s.cores))
        fetch_errors = fetch(conns[master.name], f"{run}/out", out)
        if not (out / "steps.json").exists():
            # say why here, while the session is open: the master's last lines and the folder
            seen = conns[master.name].run(
                f"ls {run}/out 2>&1 | tr '\\n' ' '; echo '|'; tail -n 5 {run}/out/master.out "
                f"2>&1 | tr '\\n' ' '", hide=True, warn=True, timeout=30).stdout.strip()
            raise RunError(f"the Locust master on {master.name} wrote no step results "
                           f"({'timed out' if timed_out else 'exited'} after "
                           f"{time.monotonic() - t0:.0f} s; {run}/out: {seen[:600]}"
                           f"{'; fetching: ' + fetch_errors[0] if fetch_errors else ''})")
    except RunError:
        raise
    except Exception as exc:  # noqa: BLE001 - SSH and remote-command failures: one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise RunError(f"the loadgen servers over SSH: {type(exc).__name__}: {first} — check "
                       f"`freehold status` and {run}/out on {master.name}") from None
    finally:
        for s in servers:
            if pids[s.name]:
                with contextlib.suppress(Exception):
                    conns[s.name].run(f"kill {' '.join(pids[s.name])} 2>/dev/null", hide=True,
                                      warn=True, timeout=15)
            with contextlib.suppress(Exception):
                conns[s.name].close()
    (out / "loadgen.json").write_text(json.dumps({"servers": [s.name for s in servers],
                                                  "workers": workers, "run": run}))
    return RunOutput(out_dir=out, exit_codes={}, wall_s=time.monotonic() - t0,
                     generator_cpu={"mean_cores": round(sum(cores_used), 3),
                                    "max_cores": round(sum(cores_used), 3),
                                    "processes": workers + 1,
                                    "servers": [s.name for s in servers]},
                     timed_out=timed_out)
