"""A calibration's CPU accounting: the app's CPU-seconds per step, the per-core figure the
capacity plan reads, what else ran; the samplers (a real local process tree; a server's
`systemctl show` answer) and the CLI's refusals (issue 24 part 3)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from freehold.deploy.loadtest.analysis import analyse
from freehold.deploy.loadtest.calibrate import calibration_doc, cpu_sampler
from freehold.deploy.loadtest.cpuaccount import (
    CpuSample,
    CpuSeries,
    cpu_at,
    cpu_between,
    step_cpu,
)
from freehold.deploy.loadtest.cpusample import (
    CpuRecorder,
    LocalSampler,
    local_app_pid,
    parse_server,
    server_script,
)
from freehold.deploy.loadtest.execute import Outcome
from freehold.deploy.loadtest.runner import RunOutput
from freehold.deploy.loadtest.target import Target
from freehold.loadgen import shapes
from freehold.loadgen.slo import Slo
from freehold.loadgen.traffic import load_model

pytestmark = pytest.mark.unit

PROFILE = """\
dau_ratio: {value: 0.4, source: "A"}
peak_to_average: {value: 2.5, source: "B"}
actions_per_dau_per_day: {source: "C", home_feed: 40, profile: 5, post: 1}
think_time_s: {min: 4, max: 16, source: "E"}
zipf_s: {value: 1.0, source: "F"}
surge_days: {value: 7, source: "G"}
app_rps_per_core: {value: 500, source: "H"}
"""

# A recorded-shape run: three ramp steps of 10 s (warm-ups 3.5, 3.3 and 3 s), the app busy
# 0.2, 0.5 and 0.9 cores in them, PostgreSQL 0.1/0.3/0.6, Redis 0.05 throughout, the whole
# machine 0.6/1.4/1.95; the third step breaks the p99 limit. Samples every second from t=100.
T0 = 100.0
RATES = {"app": (0.2, 0.5, 0.9), "postgres": (0.1, 0.3, 0.6), "redis": (0.05, 0.05, 0.05),
         "machine": (0.6, 1.4, 1.95)}
WINDOWS = ((103.5, 110.0), (113.3, 120.0), (123.0, 130.0))
REQUESTS = (650, 1675, 3000)


def cumulative(group: str, t: float) -> float:
    total = 0.0
    for k, rate in enumerate(RATES[group]):
        lo, hi = T0 + 10 * k, T0 + 10 * (k + 1)
        total += rate * max(0.0, min(t, hi) - lo)
    return total


def recorded_series(skip_app_after: float | None = None) -> CpuSeries:
    samples = []
    for i in range(31):
        t = T0 + i
        cpu = {g: cumulative(g, t) for g in RATES}
        if skip_app_after is not None and t > skip_app_after:
            del cpu["app"]
        samples.append(CpuSample(t=t, cpu_s=cpu, load_1m=1.0 + i / 10))
    return CpuSeries(samples=samples, method="psutil over the app's process tree (test)",
                     groups={g: g for g in RATES}, cpus=2)


def steps_doc() -> dict:
    def rec(i: int, n: int, p99_bucket: int) -> dict:
        t_measure, t_end = WINDOWS[i]
        return {"index": i, "t_start": T0 + 10 * i, "t_measure": t_measure, "t_end": t_end,
                "seconds": t_end - t_measure, "users": 4 * (i + 1),
                "stats": {k: {"requests": n, "failures": 0, "hist": {str(p99_bucket): n}}
                          for k in ("Aggregated", "GET /timelines/home")}}
    return {"steps": [rec(0, REQUESTS[0], 20), rec(1, REQUESTS[1], 40),
                      rec(2, REQUESTS[2], 2000)]}


@pytest.fixture
def run(tmp_path: Path) -> tuple[Outcome, Target, object]:
    prof = tmp_path / "profile.yaml"
    prof.write_text(PROFILE)
    model = load_model(prof)
    plan = shapes.calibrate(model, "http://127.0.0.1:9", 30, steps=3)
    res = analyse(plan, steps_doc(), Slo.from_json({"p99_ms": {"default": 500},
                                                    "min_requests": 20}))
    out = RunOutput(out_dir=tmp_path, exit_codes={"local": 0}, wall_s=31.0,
                    generator_cpu={"mean_cores": 0.3, "max_cores": 0.5, "processes": 1})
    tgt = Target(label="t", url="http://127.0.0.1:9", app_cores=2)
    return Outcome(res, out, tmp_path, {}), tgt, model


def test_interpolation_between_samples_and_no_extrapolation() -> None:
    s = [CpuSample(10.0, {"app": 1.0}), CpuSample(12.0, {"app": 2.0}),
         CpuSample(13.0, {"app": 4.0})]
    assert cpu_at(s, "app", 11.0) == pytest.approx(1.5)
    assert cpu_at(s, "app", 12.5) == pytest.approx(3.0)
    assert cpu_at(s, "app", 13.0) == pytest.approx(4.0)
    assert cpu_at(s, "app", 9.9) is None and cpu_at(s, "app", 13.1) is None
    assert cpu_at(s, "redis", 11.0) is None
    assert cpu_between(s, "app", 11.0, 12.5) == pytest.approx(1.5)


def test_step_accounting_against_a_hand_calculation() -> None:
    series = recorded_series()
    got = step_cpu(series.samples, 113.3, 120.0, 1675)
    # 0.5 cores x 6.7 s = 3.35 app CPU-seconds; 1,675 requests / 3.35 = 500 per CPU-second
    assert got["app_cpu_s"] == pytest.approx(3.35)
    assert got["app_cores_busy"] == pytest.approx(0.5)
    assert got["rps_per_app_cpu"] == pytest.approx(500.0)
    busy = got["cores_busy"]
    assert busy["postgres"] == pytest.approx(0.3) and busy["redis"] == pytest.approx(0.05)
    assert busy["machine"] == pytest.approx(1.4)
    # the machine's busy cores less the named groups: the generator and everything else
    assert busy["unnamed"] == pytest.approx(1.4 - 0.5 - 0.3 - 0.05)
    assert got["load_avg_1m"] == pytest.approx(3.0)  # the sample nearest 120 s
    # too little app CPU to divide by: no quotient, the CPU still shown
    tiny = step_cpu(series.samples, 100.0, 100.5, 50)
    assert tiny["app_cpu_s"] == pytest.approx(0.1) and tiny["rps_per_app_cpu"] is None


def test_doc_uses_the_app_cpu_figure_of_the_highest_passing_step(run: tuple) -> None:
    outcome, tgt, model = run
    doc = calibration_doc(outcome, tgt, tgt.url, 2.0, model, cpu=recorded_series())
    steps = doc["steps"]
    assert [s["passed"] for s in steps] == [True, True, False]
    assert [s["app_cpu_s"] for s in steps] == pytest.approx([1.3, 3.35, 6.3])
    assert [s["rps_per_app_cpu"] for s in steps] == pytest.approx([500.0, 500.0, 476.2])
    # ramp 2 is the highest step within the SLO (ramp 3 has more req/s but broke the p99)
    assert doc["rps_per_server"] == pytest.approx(1675 / 6.7, abs=0.05)
    assert doc["rps_per_core"] == pytest.approx(500.0)
    assert doc["rps_per_nominal_core"] == pytest.approx(1675 / 6.7 / 2, abs=0.05)
    assert doc["app_cores_busy"] == pytest.approx(0.5)
    assert doc["rps_per_core_basis"].startswith("requests per app CPU-second at ramp 2")
    assert "psutil over the app's process tree" in doc["rps_per_core_basis"]
    assert doc["best_step"]["name"] == "ramp 2" and doc["best_step"]["app_cpu_s"] == 3.35
    ran = doc["what_else_ran"]
    assert ran["cores_busy_at_best_step"]["postgres"] == pytest.approx(0.3)
    assert ran["generator_cpu"]["mean_cores"] == 0.3 and ran["machine_cpus"] == 2
    assert ran["load_avg_1m"] == {"start": 1.0, "end": 4.0, "max": 4.0}
    assert doc["cpu_accounting"]["samples"] == 31 and doc["cpu_accounting"]["error_count"] == 0
    json.dumps(doc)  # the file is JSON


def test_without_the_apps_cpu_the_figure_is_per_nominal_core_and_says_why(run: tuple) -> None:
    outcome, tgt, model = run
    cpu = recorded_series(skip_app_after=110.0)  # the app's counter lost before ramp 2
    cpu.errors.append("b3: TimeoutError: no answer")
    doc = calibration_doc(outcome, tgt, tgt.url, 2.0, model, cpu=cpu)
    assert doc["steps"][0]["rps_per_app_cpu"] == pytest.approx(500.0)
    assert doc["steps"][1]["app_cpu_s"] is None
    assert doc["rps_per_core"] == doc["rps_per_nominal_core"] == pytest.approx(125.0, abs=0.05)
    assert doc["rps_per_core_basis"].startswith("requests/s per NOMINAL core")
    assert "b3: TimeoutError" in doc["rps_per_core_basis"]
    # no sampler at all (a URL elsewhere): still a document, nominal, saying so
    bare = calibration_doc(outcome, tgt, tgt.url, 2.0, model)
    assert bare["rps_per_core"] == pytest.approx(125.0, abs=0.05)
    assert "not measured" in bare["rps_per_core_basis"]


# ---- a server's answer -----------------------------------------------------------------
SERVER_ANSWER = """\
t0 1765112000.250000000
tick 100
cpus 2
load 1.37
cpu  40000 500 9000 150000 700 0 300 100 0 0
ControlGroup=/system.slice/freehold-app.service
CPUUsageNSec=12500000000
Id=freehold-app.service

ControlGroup=/system.slice/redis-server.service
CPUUsageNSec=[not set]
Id=redis-server.service

ControlGroup=
CPUUsageNSec=[not set]
Id=patroni.service
cg /system.slice/freehold-app.service 12500000
cg /system.slice/redis-server.service 2250000
t1 1765112000.270000000
"""


def test_server_script_and_answer() -> None:
    script = server_script(["freehold-app*.service", "redis-server.service"])
    assert "systemctl show -p Id -p CPUUsageNSec -p ControlGroup -- " \
           "'freehold-app*.service' redis-server.service;" in script
    assert "echo t0 $(date +%s.%N);" in script and "/proc/stat" in script
    for shell in ("bash", "dash"):  # the whole script parses in either login shell
        subprocess.run([shell, "-n", "-c", script], check=True, timeout=10)
    groups = {"app": ["freehold-app*.service"], "redis": ["redis-server.service"],
              "postgres": ["patroni.service"]}
    t, cpu, load, cpus, problems, _ = parse_server(SERVER_ANSWER, groups)
    assert t == pytest.approx(1765112000.26)
    assert cpu["app"] == pytest.approx(12.5)  # systemd's CPUUsageNSec
    assert cpu["redis"] == pytest.approx(2.25)  # [not set]: the cgroup's cpu.stat
    assert "postgres" not in cpu and problems == [
        "postgres: no running unit matches patroni.service"]
    # user + nice + system + irq + softirq + steal jiffies at 100 per second
    assert cpu["machine"] == pytest.approx((40000 + 500 + 9000 + 0 + 300 + 100) / 100)
    assert load == pytest.approx(1.37) and cpus == 2
    blind = SERVER_ANSWER.replace("cg /system.slice/redis-server.service 2250000\n", "")
    got = parse_server(blind, {"redis": ["redis-server.service"]})
    assert "redis" not in got.cpu and "set CPUAccounting=yes" in got.problems[0]
    # no cpu controller (a container on a cgroup v1 host): its processes' ticks
    v1 = blind.replace("t1 ", "procs /system.slice/redis-server.service 437\nt1 ")
    got = parse_server(v1, {"redis": ["redis-server.service"]})
    assert got.cpu["redis"] == pytest.approx(4.37) and not got.problems
    assert "CPU ticks of the processes in its cgroup" in got.how["redis"]


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_procs_ticks_sums_the_listed_processes_cpu(shell: str, tmp_path: Path) -> None:
    """The script's shell function on real processes: this one and a busy child whose name
    holds ") " (the /proc/PID/stat parse), against psutil's reading of the same processes."""
    import shutil

    import psutil

    from freehold.deploy.loadtest.cpusample import PROCS_TICKS

    if not shutil.which(shell):
        pytest.fail(f"{shell} is not installed (scripts/debian-packages.txt)")
    busy = tmp_path / "bu) sy 1 2"
    busy.write_text("import time\nt = time.process_time()\n"
                    "while time.process_time() - t < 0.5: pass\ntime.sleep(30)\n")
    child = subprocess.Popen([sys.executable, str(busy)])
    try:
        deadline = time.monotonic() + 20
        while psutil.Process(child.pid).cpu_times().user + \
                psutil.Process(child.pid).cpu_times().system < 0.45:
            assert time.monotonic() < deadline, "the child never got busy"
            time.sleep(0.1)
        procs = tmp_path / "cgroup.procs"
        procs.write_text(f"{os.getpid()}\n{child.pid}\n999999999\n")  # the last one is gone
        def psutil_sum() -> float:
            return sum(sum(psutil.Process(p).cpu_times()[:4]) for p in (os.getpid(), child.pid))

        before = psutil_sum()  # the shell's read falls between these two (a loaded machine)
        out = subprocess.run([shell, "-c", PROCS_TICKS + f'procs_ticks "{procs}"'],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        after = psutil_sum()
        got = int(out) / os.sysconf("SC_CLK_TCK")
        assert before - 0.05 <= got <= after + 0.05, (before, got, after)
        assert got >= 0.45
    finally:
        child.kill()
        child.wait(timeout=10)


class RecordedConnection:
    """Answers every command with the recorded server answer (or fails): what ServerSampler
    does with an answer, without a server."""

    def __init__(self, answer: str | None) -> None:
        self.answer, self.commands, self.closed = answer, [], False

    def run(self, command: str, **kw: object) -> object:
        self.commands.append((command, kw))
        if self.answer is None:
            raise TimeoutError("no answer")
        return type("Result", (), {"stdout": self.answer})()

    def close(self) -> None:
        self.closed = True


def test_server_sampler_stamps_with_the_clock_of_the_step_records() -> None:
    from freehold.deploy.loadtest.cpusample import SampleError, ServerSampler

    srv = type("Srv", (), {"name": "a3"})()
    groups = {"app": ["freehold-app*.service"], "postgres": ["patroni.service"]}
    on_server = ServerSampler(srv, None, groups, clock="server")
    on_server._conn = RecordedConnection(SERVER_ANSWER)
    got = on_server.read()
    assert got.t == pytest.approx(1765112000.26) and got.cpu_s["app"] == pytest.approx(12.5)
    assert got.load_1m == pytest.approx(1.37) and on_server.series.cpus == 2
    command, kw = on_server._conn.commands[0]
    assert command == on_server.script and kw["timeout"] == 10.0 and kw["warn"] is True
    # the other role's missing unit is noted once, however many reads
    on_server.read()
    assert on_server.series.errors == ["postgres: no running unit matches patroni.service"]
    here = ServerSampler(srv, None, groups, clock="local")
    here._conn = RecordedConnection(SERVER_ANSWER)
    before = time.time()
    assert before - 1 <= here.read().t <= time.time() + 1
    assert here.offsets[0] == pytest.approx(1765112000.26 - before, abs=5)
    broken = RecordedConnection(None)
    here._conn = broken
    with pytest.raises(SampleError, match="a3: TimeoutError: no answer"):
        here.read()
    assert broken.closed and here._conn is None  # the next read connects again
    no_app = ServerSampler(srv, None, {"app": ["freehold-app*.service"]}, clock="server")
    no_app._conn = RecordedConnection(SERVER_ANSWER.replace("freehold-app", "other-app"))
    with pytest.raises(SampleError, match="app: no running unit matches"):
        no_app.read()


# ---- this machine ----------------------------------------------------------------------
# a child that burns a fixed amount of CPU (not of time: the machine may be busy), says how
# much it used, and exits; its parent reaps it and then waits
BURN = "import time\nwhile time.process_time() < 0.3: pass\nprint(time.process_time())\n"
PARENT = ("import subprocess, sys, time\nprint('ready', flush=True)\nsys.stdin.readline()\n"
          f"c = subprocess.run([sys.executable, '-c', {BURN!r}], capture_output=True, text=True)"
          "\nprint(c.stdout.strip(), flush=True)\ntime.sleep(60)\n")


def test_local_sampler_counts_a_tree_and_its_reaped_children() -> None:
    """The app group's counter rises by the CPU of a worker that ran and ended inside the
    window (the parent reaped it: its CPU moved into the parent's children_* times)."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdin is not None and parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        sampler = LocalSampler({"app": [parent.pid]}, {"app": "test tree"}, "test")
        before = sampler.read()
        parent.stdin.write("go\n")
        parent.stdin.flush()
        child_cpu = float(parent.stdout.readline())  # the child has ended and been reaped
        after = sampler.read()
        used = after.cpu_s["app"] - before.cpu_s["app"]
        # the child's own CPU (counters tick every 10 ms), plus the parent's for starting it
        assert child_cpu - 0.02 <= used <= child_cpu + 0.5
        assert after.t > before.t and after.cpu_s["machine"] >= before.cpu_s["machine"] + used
        with CpuRecorder(sampler, interval_s=0.1, max_s=30) as rec:
            deadline = time.monotonic() + 20  # a busy machine may starve the thread a while
            while len(rec.series.samples) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        got = rec.series.samples
        assert len(got) >= 3 and not rec.series.errors
        assert [x.t for x in got] == sorted(x.t for x in got)
    finally:
        parent.kill()
        parent.wait(timeout=10)


def test_the_local_app_is_found_by_its_listening_port() -> None:
    server = subprocess.Popen([sys.executable, "-c",
                               "import socket, time\ns = socket.socket()\n"
                               "s.bind(('127.0.0.1', 0)); s.listen()\n"
                               "print(s.getsockname()[1], flush=True)\ntime.sleep(30)\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        assert local_app_pid(f"http://127.0.0.1:{port}") == (server.pid, "")
        tgt = Target(label="t", url=f"http://127.0.0.1:{port}", app_cores=1,
                     app_urls=[f"http://127.0.0.1:{port}"])
        sampler, why = cpu_sampler(tgt, 0, watch={"postgres": [server.pid]})
        assert sampler is not None and why == ""
        assert set(sampler.series.groups) == {"app", "postgres", "machine"}
        assert f"pid {server.pid}, listening for" in sampler.series.groups["app"]
    finally:
        server.kill()
        server.wait(timeout=10)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    pid, why = local_app_pid(f"http://127.0.0.1:{free}")
    assert pid is None and f"port {free}" in why
    elsewhere = Target(label="t", url="http://192.0.2.1:80", app_cores=1,
                       app_urls=["http://192.0.2.1:80"])
    sampler, why = cpu_sampler(elsewhere, 0)
    assert sampler is None and "not this machine's loopback" in why and "--app-pid" in why


SERVER = ("import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0)); s.listen()\n"
          "print(s.getsockname()[1], flush=True)\nc, _ = s.accept()\ntime.sleep(30)\n")
CLIENT = ("import socket, sys, time\nc = socket.create_connection(('127.0.0.1', "
          "int(sys.argv[1])))\nprint('connected', flush=True)\ntime.sleep(30)\n")


def test_the_servers_an_app_is_connected_to_are_found() -> None:
    """A local app's PostgreSQL and Redis are found by its loopback connections (here: a
    process listening, and a process connected to it); the server's own clients are not."""
    from freehold.deploy.loadtest.cpusample import local_peers

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                              text=True)
    client = None
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        client = subprocess.Popen([sys.executable, "-c", CLIENT, port], stdout=subprocess.PIPE,
                                  text=True)
        assert client.stdout is not None and client.stdout.readline().strip() == "connected"
        found = local_peers(client.pid)
        assert list(found.values()) == [[server.pid]], found
        assert local_peers(server.pid) == {}  # it is connected to only by its client
        tgt = Target(label="t", url=f"http://127.0.0.1:{port}", app_cores=1,
                     app_urls=[f"http://127.0.0.1:{port}"])
        sampler, _ = cpu_sampler(tgt, 0, app_pid=client.pid)
        assert sampler is not None
        (name,) = found
        assert "a local server the app is connected to" in sampler.series.groups[name]
        sampler, _ = cpu_sampler(tgt, 0, app_pid=client.pid, watch={name: [client.pid]})
        assert sampler is not None and "given with --watch" in sampler.series.groups[name]
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.parametrize("item", ["postgres", "postgres=x", "=12", "app=12", "machine=3"])
def test_a_bad_watch_is_refused_in_one_line(item: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    import typer

    from freehold.deploy.cli.loadtest_cmd import _watch_groups

    with pytest.raises(typer.Exit) as exc:
        _watch_groups(["redis=7", item])
    assert exc.value.exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--watch {item}: give NAME=PID" in lines[0]
    assert _watch_groups(["worker=5", "worker=6", "redis=7"]) == {"worker": [5, 6],
                                                                   "redis": [7]}


def test_cli_refuses_a_bad_watch_before_anything_runs() -> None:
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "freehold.deploy", "loadtest", "calibrate",
                        "http://127.0.0.1:9", "--watch", "postgres"], cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--watch postgres: give NAME=PID" in lines[0]
