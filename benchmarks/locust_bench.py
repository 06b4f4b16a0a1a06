"""Benchmark: what the load generator costs, and what one app core carries.

1. Generator: requests/s one Locust process (FastHttpUser, and HttpUser for comparison) sustains
   per core of CPU it burns, against a trivial endpoint (the app's /healthz), side by side IN THE
   SAME RUN with `wrk` (Debian package) on the same endpoint. The app is pinned to one CPU and the
   generator to the other (taskset); the generator's CPU is measured (psutil over the steady
   window, rusage for wrk), so "requests/s per generator core" holds even when the app is the
   bottleneck. That says how much of a machine the load generator needs.
2. Calibration (with --calibrate): `freehold loadtest calibrate` against the app pinned to one
   core, seeded by app.seed, told the pids of the app's web server, its workers, PostgreSQL and
   Redis (their CPU is accounted per step); writes loadgen/measurements/calibration.json (the
   per-core figure `freehold capacity` reads: requests per app CPU-second), then asks
   `freehold capacity --accounts 10M --json`. Over the
   calibrate run alone (not the seeding) the CPU of the local PostgreSQL (postmaster and
   backends, those that exit included) and of Redis is measured and divided by the requests the
   run made: `calibration.postgres_cpu_ms_per_request` and
   `calibration.redis_cpu_ms_per_request` (read by `freehold capacity` as
   pg_cpu_ms_per_request and redis_cpu_ms_per_request).

PostgreSQL and Redis run with production durability (`--durability`, app.devstack) and
the files written say so (the run header of benchmarks/resultsfile.py: commit, settings, the
durability the servers reported); the calibration file gets the same header.

Prints a table and writes benchmarks/results/locust_bench.json.

    .venv/bin/python benchmarks/locust_bench.py [--seconds 15] [--calibrate] [--accounts 100k]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]

from cpumeter import CpuMeter  # noqa: E402
from resultsfile import with_header, write_results  # noqa: E402

from freehold.app.db import migrate  # noqa: E402
from freehold.app.devstack import (  # noqa: E402
    DURABILITY,
    durability_of,
    local_stack,  # noqa: E402
)
from freehold.app.settings import Settings  # noqa: E402
from freehold.deploy.loadtest.calibrate import CALIBRATION  # noqa: E402
from freehold.deploy.loadtest.localapp import LocalApp  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "locust_bench.json"
# a calibration is a wall-clock figure within the SLO: on a machine already loaded by other work
# when it starts it measures that work, not the app (2026-12-06: 29.6 req/s per core starting at
# load 21 on 2 cores, 569.4 starting at 0.8), so it is not installed as the capacity input. The
# load at the start counts: the run's own app, generator and servers raise it to ~4 by the end
BUSY_LOAD_PER_CPU = 1.0
GEN_CPU, APP_CPU = "0", "1"


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def run_wrk(url: str, seconds: int, connections: int = 64) -> dict[str, Any]:
    if not shutil.which("wrk"):
        return {"error": "wrk not installed: apt-get install wrk"}
    c0, t0 = children_cpu(), time.monotonic()
    r = subprocess.run([*pin(GEN_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                        "--latency", url], capture_output=True, text=True,
                       timeout=seconds + 30)
    wall, cpu = time.monotonic() - t0, children_cpu() - c0
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", r.stdout)
    rps = float(m.group(1)) if m else 0.0
    p99_ms = None
    if p99:
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    cores = cpu / wall if wall else 0.0
    return {"tool": "wrk -t1", "connections": connections, "rps": round(rps),
            "generator_cores": round(cores, 3),
            "rps_per_generator_core": round(rps / cores) if cores else None,
            "p99_ms": p99_ms, "errors": "Non-2xx" in r.stdout or "Socket errors" in r.stdout}


def run_locust(url: str, seconds: int, kind: str, users: int = 64) -> dict[str, Any]:
    """One Locust process (local runner = one worker's work), steady window measured."""
    out = Path(tempfile.mkdtemp(prefix="locust-bench-"))
    env = {**os.environ, "FREEHOLD_BENCH_USER": kind}
    cmd = [*pin(GEN_CPU), sys.executable, "-m", "locust", "-f",
           str(ROOT / "loadgen" / "bench_locustfile.py"), "--headless", "-u", str(users),
           "-r", str(users), "-t", f"{seconds}s", "--host", url, "--csv", str(out / "b"),
           "--csv-full-history", "--only-summary", "--loglevel", "WARNING",
           "--exit-code-on-error", "0"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    samples: list[tuple[float, float]] = []  # (unix time, cpu seconds of the process tree)
    proc = psutil.Process(p.pid)
    deadline = time.monotonic() + seconds + 40
    while p.poll() is None and time.monotonic() < deadline:
        try:
            cpu = sum(x.cpu_times().user + x.cpu_times().system
                      for x in [proc, *proc.children(recursive=True)])
            samples.append((time.time(), cpu))
        except psutil.Error:
            pass
        time.sleep(0.25)
    if p.poll() is None:
        p.kill()
    p.wait(timeout=10)
    hist = [r for r in csv.DictReader((out / "b_stats_history.csv").open())
            if r["Name"] == "Aggregated"]
    shutil.rmtree(out, ignore_errors=True)
    pts = [(float(r["Timestamp"]), int(r["Total Request Count"])) for r in hist]
    # steady window: from 3 s after the first request to the last history row
    pts = [x for x in pts if x[1] > 0]
    if len(pts) < 4 or len(samples) < 4:
        return {"tool": f"locust {kind}", "error": "too few samples"}
    t1 = pts[0][0] + 3
    a = next(x for x in pts if x[0] >= t1)
    b = pts[-1]

    def cpu_at(t: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - t))[1]

    secs = b[0] - a[0]
    rps = (b[1] - a[1]) / secs if secs > 0 else 0.0
    cores = (cpu_at(b[0]) - cpu_at(a[0])) / secs if secs > 0 else 0.0
    return {"tool": f"locust {'FastHttpUser' if kind == 'fast' else 'HttpUser'} (1 process)",
            "users": users, "rps": round(rps), "generator_cores": round(cores, 3),
            "rps_per_generator_core": round(rps / cores) if cores > 0 else None,
            "window_s": round(secs, 1)}


def capacity_says(accounts: str = "10M") -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "freehold.deploy", "capacity", "--accounts", accounts,
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return {"exit": r.returncode, "stderr": r.stderr.strip()[:300]}
    try:
        return {"exit": 0, "plan": json.loads(r.stdout)}
    except json.JSONDecodeError:
        return {"exit": 0, "stdout": r.stdout[:500]}


def server_cpu_per_request(cal: dict[str, Any], used: dict[str, float]) -> dict[str, Any]:
    """PostgreSQL and Redis CPU milliseconds per request of a calibration run, from the CPU
    they used over the run (`used`, CpuMeter) and the requests the run made: all of them
    (requests_total, warm-ups included) when the calibration says, else the sum of its steps'
    (measured windows only, so fewer: the figure is then high)."""
    in_steps = sum(int(s.get("requests") or 0) for s in cal.get("steps", []))
    total = cal.get("requests_total")
    use_total = isinstance(total, int) and total > 0
    requests = int(total) if use_total else in_steps  # type: ignore[arg-type]
    out: dict[str, Any] = {
        "postgres_cpu_s": round(used.get("postgres", 0.0), 3),
        "redis_cpu_s": round(used.get("redis", 0.0), 3),
        "server_cpu_wall_s": round(used.get("wall_s", 0.0), 1),
        "requests": requests, "requests_in_steps": in_steps,
        "requests_counted": "requests_total: every request of the run, warm-ups included"
        if use_total else "the steps' requests: measured windows only, warm-ups left out",
    }
    if requests > 0:
        for name in ("postgres", "redis"):
            out[f"{name}_cpu_ms_per_request"] = round(used.get(name, 0.0) * 1000 / requests, 3)
    out["server_cpu_note"] = (
        "CPU seconds of the local PostgreSQL (postmaster and all backends, exited ones "
        "included) and Redis over the `freehold loadtest calibrate` subprocess alone, divided "
        "by its requests; includes their background work (checkpoints, autovacuum) in that "
        "time")
    return out


def accounting_args(app: LocalApp, pg_pid: int, redis_pid: int) -> list[str]:
    """The calibrate options that name the processes whose CPU it accounts per step: the
    app's web server (the figure's denominator), its background workers, PostgreSQL, Redis."""
    pids = app.pids()
    args = ["--app-pid", str(pids["web"]), "--watch", f"postgres={pg_pid}", "--watch",
            f"redis={redis_pid}"]
    for name, pid in pids.items():
        if name.startswith("worker-"):
            args += ["--watch", f"worker={pid}"]
    return args


def calibrate(app: LocalApp, dsn: str, accounts: str, seconds: str, pg_pid: int,
              redis_pid: int, write_to: Path) -> dict[str, Any]:
    fh = [sys.executable, "-m", "freehold.deploy", "loadtest"]
    r = subprocess.run([*fh, "seed", app.url, "--accounts", accounts, "--dsn", dsn, "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        return {"error": f"seed failed: {r.stderr.strip()[:300]}"}
    seeded = json.loads(r.stdout)
    meter = CpuMeter(exited=True, postgres=pg_pid, redis=redis_pid)
    meter.start()
    loads = [os.getloadavg()[0]]
    r = subprocess.run([*pin(GEN_CPU), *fh, "calibrate", app.url, "--app-cores", "1",
                        "--duration", seconds, "--workers", "1", "--json",
                        "--write", str(write_to), *accounting_args(app, pg_pid, redis_pid)],
                       cwd=ROOT, capture_output=True, text=True, timeout=3600)
    used = meter.stop()
    loads.append(os.getloadavg()[0])
    if r.returncode not in (0, 1):
        return {"seed": seeded, "error": f"calibrate failed: {r.stderr.strip()[:300]}"}
    cal = json.loads(r.stdout)
    return {"seed": seeded, "calibration": cal, "load_avg_1m": [round(x, 2) for x in loads],
            **server_cpu_per_request(cal, used)}


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def install_calibration(written: Path, cal: dict[str, Any], settings: dict[str, Any],
                        durability: dict[str, object], force: bool,
                        dest: Path = CALIBRATION) -> str:
    """Put the calibration `freehold loadtest calibrate` wrote at `written` in place of
    loadgen/measurements/calibration.json under this benchmark's header (it started the
    servers, so it knows their durability; the calibrate run's own settings are kept) — unless
    the machine was too busy when the run started (BUSY_LOAD_PER_CPU) and not `force`.
    Returns what was done, for the results file."""
    before = (cal.get("load_avg_1m") or [0.0])[0]
    cpus = os.cpu_count() or 1
    if before > BUSY_LOAD_PER_CPU * cpus and not force:
        return (f"NOT installed as {shown(dest)}: load average {before} on "
                f"{cpus} CPUs when the run started (> {BUSY_LOAD_PER_CPU:g} per CPU), so the "
                "app was starved of CPU; run again on a quiet machine (or --force-calibration)")
    doc = json.loads(written.read_text())
    own = (doc.get("run") or {}).get("settings") or {}
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(with_header(doc, __file__, {**settings, "calibrate": own},
                                          durability), indent=1) + "\n")
    tmp.replace(dest)
    return f"installed as {shown(dest)}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--accounts", default="100k")
    ap.add_argument("--calibrate-duration", default="4m")
    ap.add_argument("--force-calibration", action="store_true",
                    help="install the calibration even when the machine was busy")
    ap.add_argument("--calibration-file", type=Path, default=CALIBRATION,
                    help="where the calibration goes (default the one `freehold capacity` "
                         "reads; a smoke run writes elsewhere)")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="results file (default benchmarks/results/locust_bench.json)")
    ap.add_argument("--durability", choices=DURABILITY, default="production",
                    help="PostgreSQL and Redis durability (default production, as deployed)")
    args = ap.parse_args()
    with local_stack(s3=True, durability=args.durability) as st:
        pg, rd, s3 = st["postgres"], st["redis"], st["s3"]
        durability = durability_of(pg, rd)  # type: ignore[arg-type]
        settings = Settings(database_url=pg.dsn, redis_url=rd.url,  # type: ignore[attr-defined]
                            s3_endpoint=s3.endpoint, s3_access_key=s3.access_key,  # type: ignore
                            s3_secret_key=s3.secret_key, db_pool_max=20,  # type: ignore
                            secret_key=secrets.token_urlsafe(32))
        migrate(settings.database_url)
        from freehold.app.services.media import MediaStore

        MediaStore.from_settings(settings).ensure_bucket_sync()
        app = LocalApp(settings, Path(str(st["root"])) / "app", web_workers=1,
                       cpus=APP_CPU).start()
        try:
            url = f"{app.url}/healthz"
            gen = [run_wrk(url, args.seconds), run_locust(app.url, args.seconds, "fast"),
                   run_locust(app.url, args.seconds, "http"), run_wrk(url, args.seconds)]
            written = Path(str(st["root"])) / "calibration.json"
            cal = calibrate(app, settings.database_url, args.accounts,
                            args.calibrate_duration, pg.proc.pid,  # type: ignore[attr-defined]
                            rd.proc.pid,  # type: ignore[attr-defined]
                            written) if args.calibrate else None
            if cal is not None and "calibration" in cal:
                cal["calibration_file"] = install_calibration(
                    written, cal, vars(args), durability, args.force_calibration,
                    args.calibration_file)
        finally:
            app.stop()
    doc: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "endpoint": "GET /healthz of the app (one uvicorn worker pinned to CPU 1); generator "
                    "pinned to CPU 0",
        "generator": gen,
    }
    fast = next((g for g in gen if "FastHttpUser" in g.get("tool", "")), {})
    wrk = [g for g in gen
           if g.get("tool", "").startswith("wrk") and g.get("rps_per_generator_core")]
    if fast.get("rps_per_generator_core") and wrk:
        best = max(w["rps_per_generator_core"] for w in wrk)
        doc["locust_vs_wrk"] = round(fast["rps_per_generator_core"] / best, 4)
        doc["generator_cores_per_1000_rps"] = round(1000 / fast["rps_per_generator_core"], 3)
    if cal is not None:
        doc["calibration"] = cal
        # `freehold capacity` reads this file (generator cores, PostgreSQL CPU per request):
        # write the new figures before asking it
        write_results(args.results, doc, script=__file__, settings=vars(args),
                      durability=durability, indent=1)
        doc["capacity_10M"] = capacity_says("10M")
    print(f"{'generator':40} {'req/s':>8} {'gen cores':>10} {'req/s per gen core':>20}")
    for g in gen:
        print(f"{g.get('tool', '?'):40} {g.get('rps', 0):>8} {g.get('generator_cores', 0):>10}"
              f" {g.get('rps_per_generator_core') or '-':>20}")
    if "locust_vs_wrk" in doc:
        print(f"Locust FastHttpUser per core = {doc['locust_vs_wrk']:.1%} of wrk per core; "
              f"{doc['generator_cores_per_1000_rps']} generator cores per 1,000 req/s")
    if cal and "calibration" in cal:
        c = cal["calibration"]
        print(f"calibrated: {c['rps_per_server']} req/s per app server (1 core pinned): "
              f"{c['rps_per_core']} req per app CPU-second, {c['rps_per_nominal_core']} per "
              f"nominal core; {c['limited_by']}")
        print(f"  per core = {c['rps_per_core_basis']}")
        print(f"calibration file: {cal.get('calibration_file')}")
    if cal and "postgres_cpu_ms_per_request" in cal:
        print(f"server CPU over the calibration: PostgreSQL {cal['postgres_cpu_s']} s, Redis "
              f"{cal['redis_cpu_s']} s for {cal['requests']:,} requests = "
              f"{cal['postgres_cpu_ms_per_request']} ms (PostgreSQL) and "
              f"{cal['redis_cpu_ms_per_request']} ms (Redis) of CPU per request")
    if cal is not None:
        print("capacity --accounts 10M:", json.dumps(doc["capacity_10M"])[:600])
    write_results(args.results, doc, script=__file__, settings=vars(args), durability=durability,
                  indent=1)
    print(f"wrote {shown(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
