"""Where a calibration's CPU samples come from (the arithmetic is deploy/loadtest/cpuaccount.py).

- `LocalSampler`: process trees on this machine, by root pid (psutil): the local app's web
  server (`app`), and when given PostgreSQL, Redis, the app's background workers; plus the
  machine's busy CPU time and load average. A process that exits inside the run still counts:
  its CPU moves into its parent's `children_*` times when the parent reaps it.
- `ServerSampler`: one app server over SSH (deploy.ssh.connection, one connection kept for the
  run, every command bounded): the CPU of the systemd units of each role the server carries
  (`freehold-app*.service` for the app) — systemd's own accounting (`CPUUsageNSec`, which
  roles/app turns on with CPUAccounting=yes) or, when it says "[not set]", the unit's cgroup
  `cpu.stat` usage_usec (cgroup v2 keeps it for every cgroup) — plus /proc/stat and the load.
- `CpuRecorder`: a thread that reads a sampler about once a second while the run goes,
  bounded in samples and time.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import psutil

from freehold.deploy.loadtest.cpuaccount import APP, MACHINE, CpuSample, CpuSeries

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SSH_READ_TIMEOUT_S = 10.0


class SampleError(RuntimeError):
    """One read of the counters failed; the recorder notes it and carries on."""


class Sampler(Protocol):
    series: CpuSeries  # method, groups, cpus: filled in by the sampler

    def read(self) -> CpuSample: ...

    def close(self) -> None: ...


# ---- this machine ---------------------------------------------------------------------
def tree_cpu_s(pids: Sequence[int], *, exited: bool = True) -> dict[int, float]:
    """CPU-seconds of each process in the trees under `pids` (user + system). With `exited`,
    each process also carries the CPU of the children it has reaped, so the sum over a tree is
    a counter that does not drop when a child ends. Processes that vanish are left out."""
    got: dict[int, float] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            got[p.pid] = t.user + t.system + (
                t.children_user + t.children_system if exited else 0.0)
    return got


def machine_busy_s() -> float:
    """Busy CPU-seconds of all cores since boot (guest time is already inside user time)."""
    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq",
                                             "steal"))


class LocalSampler:
    def __init__(self, groups: Mapping[str, Sequence[int]], what: Mapping[str, str],
                 method: str) -> None:
        self.groups = {g: list(p) for g, p in groups.items() if p}
        self.series = CpuSeries(method=method, groups={**dict(what), MACHINE: (
            f"busy time of all {os.cpu_count()} CPUs of this machine (psutil.cpu_times)")},
            cpus=os.cpu_count())

    def read(self) -> CpuSample:
        cpu: dict[str, float] = {}
        for g, pids in self.groups.items():
            if not any(psutil.pid_exists(p) for p in pids):
                continue  # gone: no counter, rather than a drop to zero
            cpu[g] = sum(tree_cpu_s(pids).values())
        cpu[MACHINE] = machine_busy_s()
        return CpuSample(t=time.time(), cpu_s=cpu, load_1m=os.getloadavg()[0])

    def close(self) -> None:
        return None


def listeners() -> dict[int, list[int]]:
    """{TCP port: pids listening on it} on this machine (only this user's, unless root)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return {}
    found: dict[int, set[int]] = {}
    for c in conns:
        if c.pid and c.status == psutil.CONN_LISTEN and c.laddr:
            found.setdefault(c.laddr.port, set()).add(c.pid)
    return {port: sorted(pids) for port, pids in found.items()}


def tree_root(pids: Sequence[int]) -> int | None:
    """The one of `pids` the others descend from (a server's supervisor and its workers all
    hold the listening socket); None when they are not one tree."""
    wanted = set(pids)
    roots = []
    for pid in wanted:
        try:
            ancestors = {p.pid for p in psutil.Process(pid).parents()}
        except psutil.Error:
            continue
        if not ancestors & wanted:
            roots.append(pid)
    return roots[0] if len(roots) == 1 else None


def local_app_pid(url: str) -> tuple[int | None, str]:
    """(the root pid of the local process serving `url`, '') or (None, why not)."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        return None, f"{parts.hostname} is not this machine's loopback"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    pids = listeners().get(port, [])
    if not pids:
        return None, f"no process of this user listens on port {port}"
    root = tree_root(pids)
    if root is None:
        return None, f"port {port} is held by unrelated processes {pids}"
    return root, ""


def local_peers(pid: int) -> dict[str, list[int]]:
    """The servers on this machine the process tree of `pid` is connected to over loopback
    TCP (the app's PostgreSQL, Redis, ...), by the name of their root process (redis-server
    as redis): {name: [root pid]}. The app's own clients connect from ports nobody listens
    on, so they are not among them."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    ports: set[int] = set()
    for proc in tree:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports |= {c.raddr.port for c in conns if c.raddr and c.raddr.ip in LOOPBACK
                  and c.status == psutil.CONN_ESTABLISHED}
    mine = {p.pid for p in tree}
    listening = listeners()
    found: dict[str, list[int]] = {}
    for port in sorted(ports):
        server = tree_root(listening.get(port, []))
        if server is None or server in mine:
            continue
        try:
            name = psutil.Process(server).name().removesuffix("-server") or "server"
        except psutil.Error:
            continue
        if server not in found.setdefault(name, []):
            found[name].append(server)
    return found


# ---- an app server over SSH ------------------------------------------------------------
# CPU clock ticks of the processes listed in the cgroup.procs file $1: utime + stime + cutime +
# cstime (fields 14-17 of /proc/PID/stat; after the last ") " the 3rd field is $1, so these are
# $12-$15). A process that exits is reaped by its parent, whose cutime/cstime then hold it.
PROCS_TICKS = (
    'procs_ticks() { t=0; for p in $(cat "$1" 2>/dev/null); do '
    's=$(cat /proc/$p/stat 2>/dev/null) || continue; s=${s##*") "}; set -- $s; '
    't=$((t + ${12} + ${13} + ${14} + ${15})); done; echo $t; }; ')
# where a unit's cgroup lists its processes: cgroup v2, or hybrid (systemd's v1 hierarchy and
# the controller-less v2 one) as in containers on a cgroup v1 host
PROCS_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")


def server_script(patterns: Sequence[str]) -> str:
    """One read of the counters on a server: its clock around the reads, the clock tick, its
    CPUs, load, the first /proc/stat line, `systemctl show` of the units matching `patterns`,
    each of their cgroups' cpu.stat usage_usec and, where there is none (no cpu controller: a
    container on a cgroup v1 host), the CPU ticks of the processes the cgroup lists."""
    pats = " ".join(shlex.quote(p) for p in patterns)
    roots = " ".join(PROCS_ROOTS)
    return (
        PROCS_TICKS
        + "echo t0 $(date +%s.%N); echo tick $(getconf CLK_TCK); echo cpus $(nproc); "
        "echo load $(cut -d' ' -f1 /proc/loadavg); head -1 /proc/stat; "
        f"systemctl show -p Id -p CPUUsageNSec -p ControlGroup -- {pats}; "
        f"for cg in $(systemctl show -p ControlGroup --value -- {pats}); do "
        "u=$(sed -n 's/^usage_usec //p' /sys/fs/cgroup$cg/cpu.stat 2>/dev/null); "
        "echo cg $cg $u; "
        f'if [ -z "$u" ]; then for r in {roots}; do '
        'if [ -r "$r$cg/cgroup.procs" ]; then echo procs $cg $(procs_ticks "$r$cg/cgroup.procs"); '
        "break; fi; done; fi; "
        "done; echo t1 $(date +%s.%N)")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class ServerRead(NamedTuple):
    t: float  # the server's clock, midway through the read
    cpu: dict[str, float]  # CPU-seconds per group and `machine`
    load: float | None
    cpus: int | None
    problems: list[str]
    how: dict[str, str]  # group -> how its figure was read, when not by systemd's accounting


def parse_server(text: str, groups: Mapping[str, Sequence[str]]) -> ServerRead:
    """What the output of `server_script` says. A group whose units are all missing, or one of
    whose units has no CPU figure any way, is left out and named in the problems."""
    kv: dict[str, str] = {}
    units: list[dict[str, str]] = []
    cgroups: dict[str, str] = {}
    procs: dict[str, str] = {}  # cgroup -> CPU ticks of its processes
    current: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("cg ", "cpu ", "procs ")):
            k, _, v = line.partition("=")
            if k == "Id" and "Id" in current:
                units.append(current)
                current = {}
            current[k] = v
            continue
        if not line.strip():
            if current:
                units.append(current)
                current = {}
            continue
        head, _, rest = line.partition(" ")
        if head == "cg":
            path, _, usec = rest.partition(" ")
            cgroups[path] = usec.strip()
        elif head == "procs":
            path, _, ticks = rest.partition(" ")
            procs[path] = ticks.strip()
        else:
            kv[head] = rest.strip()
    if current:
        units.append(current)
    problems: list[str] = []
    how: dict[str, str] = {}
    t0, t1 = _number(kv.get("t0", "")), _number(kv.get("t1", ""))
    if t0 is None:
        raise SampleError(f"no clock in the server's answer: {text[:120]!r}")
    tick = _number(kv.get("tick", "")) or 100.0
    cpu: dict[str, float] = {}
    stat = kv.get("cpu", "").split()
    if len(stat) >= 8:
        v = [float(x) for x in stat[:8]]
        # user nice system idle iowait irq softirq steal: busy leaves idle and iowait out
        cpu[MACHINE] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick
    for group, patterns in groups.items():
        mine = [u for u in units if u.get("Id") and any(fnmatch.fnmatch(u["Id"], p)
                                                        for p in patterns)
                and u.get("ControlGroup")]
        if not mine:
            problems.append(f"{group}: no running unit matches {', '.join(patterns)}")
            continue
        total, missing = 0.0, []
        for u in mine:
            ns = _number(u.get("CPUUsageNSec", ""))
            usec = _number(cgroups.get(u.get("ControlGroup", ""), ""))
            ticks = _number(procs.get(u.get("ControlGroup", ""), ""))
            if ns is not None:
                total += ns / 1e9
            elif usec is not None:
                total += usec / 1e6
            elif ticks is not None:
                total += ticks / tick
                how.setdefault(group, "the CPU ticks of the processes in its cgroup "
                                      "(/proc/PID/stat: no cpu controller there)")
            else:
                missing.append(u["Id"])
        if missing:
            problems.append(f"{group}: no CPU figure for {', '.join(missing)} (CPUUsageNSec "
                            "not set, no cgroup v2 cpu.stat, no cgroup.procs): set "
                            "CPUAccounting=yes")
            continue
        cpu[group] = total
    load = _number(kv.get("load", ""))
    cpus = _number(kv.get("cpus", ""))
    return ServerRead((t0 + t1) / 2 if t1 is not None else t0, cpu, load,
                      int(cpus) if cpus else None, problems, how)


class ServerSampler:
    """The units of `groups` ({group: unit patterns}) on one server, read over SSH. `clock`:
    'server' stamps each sample with the server's clock (the step records come from a Locust
    master on the cluster), 'local' with this machine's (Locust runs here)."""

    def __init__(self, server: Any, ssh: Any, groups: Mapping[str, Sequence[str]],
                 clock: str = "local") -> None:
        self.server, self.ssh, self.clock = server, ssh, clock
        self.groups = {g: list(p) for g, p in groups.items()}
        self.script = server_script([p for ps in self.groups.values() for p in ps])
        self._conn: Any = None
        self.offsets: list[float] = []  # server clock - this machine's, per read
        self.series = CpuSeries(
            method=(f"systemd's CPU accounting of the units on {server.name} over SSH "
                    "(CPUUsageNSec, else the unit's cgroup cpu.stat), "
                    f"stamped with the {clock} clock"),
            groups={**{g: "units " + ", ".join(p) for g, p in self.groups.items()},
                    MACHINE: f"busy time of all CPUs {server.name} sees (/proc/stat; in a "
                             "container: the host's)"})

    def read(self) -> CpuSample:
        from freehold.deploy.ssh import connection

        before = time.time()
        try:
            if self._conn is None:
                self._conn = connection(self.server, self.ssh)
            res = self._conn.run(self.script, hide=True, warn=True, timeout=SSH_READ_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - any failure: this read only, reconnect next
            self.close()
            raise SampleError(f"{self.server.name}: {type(exc).__name__}: {exc}"[:200]) from None
        after = time.time()
        t, cpu, load, cpus, problems, how = parse_server(res.stdout, self.groups)
        for group, text in how.items():  # said once in the calibration file
            if text not in self.series.groups.get(group, ""):
                self.series.groups[group] = f"{self.series.groups.get(group, group)}: {text}"
        if cpus:
            self.series.cpus = cpus
        self.offsets.append(t - (before + after) / 2)
        stamp = t if self.clock == "server" else (before + after) / 2
        if problems and APP not in cpu:
            raise SampleError(f"{self.server.name}: " + "; ".join(problems))
        for problem in problems:  # another role's units: noted once, the app still counted
            if problem not in self.series.errors:
                self.series.errors.append(problem)
        return CpuSample(t=stamp, cpu_s=cpu, load_1m=load)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


# ---- the recorder ----------------------------------------------------------------------
class CpuRecorder:
    """Reads `sampler` every `interval_s` from start() to stop(), at most `max_s` seconds and
    `max_s / interval_s + 2` samples; failed reads are noted in the series' errors."""

    def __init__(self, sampler: Sampler, *, interval_s: float = 1.0, max_s: float = 3600.0
                 ) -> None:
        self.sampler = sampler
        self.series = sampler.series
        self.series.interval_s = interval_s
        self.interval_s, self.max_s = interval_s, max_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="freehold-cpu", daemon=True)

    def _take(self) -> None:
        try:
            self.series.samples.append(self.sampler.read())
        except (SampleError, psutil.Error, OSError) as exc:
            self.series.errors.append(str(exc)[:200])

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_s
        limit = int(self.max_s / self.interval_s) + 2
        while (not self._stop.is_set() and time.monotonic() < deadline
               and len(self.series.samples) + len(self.series.errors) < limit):
            self._take()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> CpuRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=SSH_READ_TIMEOUT_S + 5)
        self._take()  # the last bound: the end of the run
        self.sampler.close()
