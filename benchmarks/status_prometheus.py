"""Benchmark: what judging the plain servers from Prometheus costs `freehold status` (issue 20).

A real Prometheus (Debian 12's package, as on the monitoring servers) scrapes N node targets on
loopback (default 300: one endpoint this script serves, under N instance names). Once every
target has been scraped, the monitoring servers' `targets` probe section is run R times as
the probe runs it (sh, curl, Debian's python3), and its answer read as the controller reads it
(fleet_view: a verdict per server). Figures:

- per section run: wall seconds, CPU seconds of the sh/curl/python3 tree (os.wait4), and
  Prometheus's own CPU for answering (its CPU over the runs less its CPU over an idle window
  of the same length, when it only scrapes);
- bytes the section prints against the API's raw answer;
- the controller's parse and verdicts for N servers.

For scale: the lab measured ~0.24 CPU-s on the server side per SSH status login (issue 20's
brief; not measured by this script), N of which the section replaces for the plain servers.

    nice -n 10 .venv/bin/python benchmarks/status_prometheus.py [--targets 300] [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from resultsfile import write_results  # noqa: E402

from freehold.deploy.ops import fleet  # noqa: E402
from freehold.deploy.ops.localprom import LocalPrometheus, MetricsEndpoint, node_job  # noqa: E402
from freehold.deploy.ops.probes import _section, parse_sections  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "status_prometheus.json"
SSH_LOGIN_SERVER_CPU_S = 0.24   # issue 20's brief, measured on the lab: for scale only
SERVER_PATH = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # Debian's python3, as on servers


def run_section(port: int) -> tuple[float, float, str]:
    """(wall s, CPU s of the whole sh tree, stdout) of one `targets` section."""
    script = _section("targets", fleet.targets_command("127.0.0.1", port), timeout=60)
    started = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=SERVER_PATH)
    out = proc.stdout.read() if proc.stdout else b""
    _, _, usage = os.wait4(proc.pid, 0)   # the tree's CPU: sh reaps curl and python3
    proc.returncode = 0
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, out.decode()


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def wait_all_scraped(port: int, names: list[str], timeout: float) -> float:
    """Seconds until every target has been scraped once (bounded by `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        code, text = parse_sections(run_section(port)[2]).get("targets", (None, ""))
        if code == 0:
            got = fleet.parse_targets("m", text)
            if all(n in got and got[n].age_s is not None for n in names):
                return time.monotonic() - started
        time.sleep(1)
    raise SystemExit(f"not every target scraped within {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=int, default=300)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--interval", type=int, default=5, help="scrape interval, s")
    args = ap.parse_args()
    names = [f"n{i:03d}" for i in range(1, args.targets + 1)]
    endpoint = MetricsEndpoint()
    with tempfile.TemporaryDirectory(prefix="status-prom-") as tmp:
        prom = LocalPrometheus(Path(tmp), [node_job(dict.fromkeys(names, endpoint.address))],
                               interval_s=args.interval)
        try:
            prom.start()
            assert prom.pid is not None
            ready_s = wait_all_scraped(prom.port, names, timeout=180)
            raw = urllib.request.urlopen(   # noqa: S310 - loopback
                f"http://127.0.0.1:{prom.port}/api/v1/targets?state=active&scrapePool=node",
                timeout=30).read()
            walls, cpus, texts = [], [], []
            p0, t0 = cpu_s(prom.pid), time.perf_counter()
            for _ in range(args.runs):
                wall, cpu, out = run_section(prom.port)
                walls.append(wall)
                cpus.append(cpu)
                texts.append(out)
            busy_s, busy_prom = time.perf_counter() - t0, cpu_s(prom.pid) - p0
            p1 = cpu_s(prom.pid)
            time.sleep(busy_s)                            # an idle window as long
            idle_prom = cpu_s(prom.pid) - p1
        finally:
            prom.stop()
            endpoint.stop()
    code, text = parse_sections(texts[-1])["targets"]
    assert code == 0, text
    c0 = time.process_time()
    view = fleet.fleet_view({"m1": (code, text), "m2": (code, text)}, names, args.interval)
    controller_cpu = time.process_time() - c0
    up = view.count(fleet.UP)
    figures = {
        "targets": args.targets, "runs": args.runs, "scrape_interval_s": args.interval,
        "all_scraped_after_s": round(ready_s, 1),
        "section_wall_s_median": round(statistics.median(walls), 3),
        "section_wall_s_max": round(max(walls), 3),
        "section_cpu_s_median": round(statistics.median(cpus), 3),
        "prometheus_cpu_s_per_answer": round(max(busy_prom - idle_prom, 0) / args.runs, 3),
        "prometheus_cpu_s_busy_vs_idle": [round(busy_prom, 2), round(idle_prom, 2)],
        "section_bytes": len(text.encode()), "api_answer_bytes": len(raw),
        "controller_verdicts_cpu_s": round(controller_cpu, 4),
        "servers_seen_up": up,
        "ssh_logins_replaced_server_cpu_s": round(args.targets * SSH_LOGIN_SERVER_CPU_S, 1),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    for k, v in figures.items():
        print(f"{k:36} {v}")
    out = write_results(RESULTS, figures, script=__file__, settings=vars(args),
                        durability="not applicable (no database)")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
