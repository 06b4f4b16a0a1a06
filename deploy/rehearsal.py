"""The scale rehearsal's steps (issue 20), shared by benchmarks/scale_bench.py and
tests/lab/test_scale.py: a spec of N lab servers, `freehold deploy` run in its own process and
measured (wall time, controller CPU-seconds and peak memory of its process tree, SSH connections
counted at the machine's own firewall), servers killed or paused while it runs, and what its
JSON report says about each host.

Everything runs against the lab named by the spec (its own name and network, never the main
lab); the faults are the lab's (deploy.lab.Lab.kill / pause).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from freehold.deploy.spec import load_spec
from freehold.roles.monitoring.config import PROMETHEUS_PORT

# what every production server carries: base, the mesh, the monitoring exporters
# (roles/monitoring runs its exporters step on every server, Prometheus only on its own)
EVERY_SERVER_ROLES = ("base", "mesh", "monitoring")
MIB = 1024 * 1024

Log = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


# ---- the spec ----------------------------------------------------------------------------

def admin_key(comment: str) -> str:
    """A fresh OpenSSH ed25519 public key (its private half is thrown away): an admin's key in a
    rehearsal spec, and the key a fleet-wide change adds."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}"


def scaled_spec(path: Path, name: str, servers: int, network: str, mesh: str,
                core: bool = True) -> Path:
    """The scaled lab spec of `freehold lab scale` (deploy/lab/scale.py: N servers over the
    production example's 4 sites and 3 providers, the heavy roles at lab size on a core of 12
    servers unless `core` is False, every other server a node), with one admin added (an
    account and key every production server carries, and what the fleet-wide change edits)."""
    from freehold.deploy.lab.scale import LIKE, ScaleRequest, render_spec
    from freehold.deploy.spec import load_spec

    req = ScaleRequest(servers=servers, name=name, net=ipaddress.IPv4Network(network),
                       mesh=ipaddress.IPv4Network(mesh), core=core)
    text = render_spec(req, load_spec(Path(__file__).resolve().parents[1] / LIKE), str(path))
    header, doc = split_spec(text)
    doc.setdefault("roles", {})["base"] = {
        "admins": [{"name": "ops", "ssh_keys": [admin_key("ops@rehearsal")]}]}
    return write_spec(path, doc, header + "# + roles.base.admins: one admin (deploy/rehearsal.py)")


def grow_spec(spec_path: Path, name: str, servers: int, network: str, mesh: str,
              core: bool = True) -> Path:
    """`spec_path` rewritten for `servers` servers (scaled_spec appends the new ones per site:
    every existing server keeps its name and addresses), keeping the file's roles.base as it
    was edited since (e.g. add_admin_key), so the grown spec changes nothing else."""
    base = (yaml.safe_load(spec_path.read_text()).get("roles") or {}).get("base")
    header, doc = split_spec(scaled_spec(spec_path, name, servers, network, mesh,
                                         core=core).read_text())
    if base is not None:
        doc.setdefault("roles", {})["base"] = base
    return write_spec(spec_path, doc, header)


def nodes(spec: Any) -> list[str]:
    """The servers carrying only what every server carries (no data or serving role)."""
    return [s.name for s in spec.servers if set(s.roles) <= {"base", "mesh"}]


def split_spec(text: str) -> tuple[str, dict[str, Any]]:
    """A spec file's comment header (its `#` lines) and its document."""
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    return header, yaml.safe_load(text)


def write_spec(path: Path, doc: dict[str, Any], header: str = "") -> Path:
    lines = "".join(line if line.startswith("#") else f"# {line}"
                    for line in header.splitlines(keepends=True))
    if lines and not lines.endswith("\n"):
        lines += "\n"
    path.write_text(lines + yaml.safe_dump(doc, sort_keys=False, width=100))
    return path


def add_admin_key(spec_path: Path, comment: str = "ops-rotated@rehearsal") -> str:
    """The fleet-wide change: a second key for the spec's first admin (a key rotation begins):
    every server's authorized_keys for that admin changes, nothing else. Returns the key."""
    header, doc = split_spec(spec_path.read_text())
    admins = doc.setdefault("roles", {}).setdefault("base", {}).setdefault("admins", [])
    if not admins:
        admins.append({"name": "ops", "ssh_keys": []})
    key = admin_key(comment)
    admins[0].setdefault("ssh_keys", []).append(key)
    spec_path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return key


# ---- counting SSH connections ------------------------------------------------------------

class SshCounter:
    """New TCP connections from this machine to port 22 of a lab network, counted by a rule of
    its own nftables table (output hook: only this machine's own connections). Read `count()`
    before and after a run; `close()` removes the table."""

    def __init__(self, lab_name: str, network: str) -> None:
        self.table = "fh_sshcount_" + "".join(c if c.isalnum() else "_" for c in lab_name)
        self.network = str(ipaddress.ip_network(network))
        self.active = False

    def open(self) -> SshCounter:
        script = (f"table ip {self.table} {{\n  chain out {{\n"
                  "    type filter hook output priority 0; policy accept;\n"
                  f"    ip daddr {self.network} tcp dport 22 tcp flags & (syn | ack) == syn "
                  "counter\n  }\n}\n")
        self.close()
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True,
                       capture_output=True, timeout=30)
        self.active = True
        return self

    def count(self) -> int | None:
        if not self.active:
            return None
        out = subprocess.run(["nft", "-j", "list", "table", "ip", self.table],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return None
        for item in json.loads(out.stdout).get("nftables", []):
            rule = item.get("rule")
            for expr in (rule or {}).get("expr", []):
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
        return None

    def close(self) -> None:
        subprocess.run(["nft", "delete", "table", "ip", self.table], capture_output=True,
                       timeout=30, check=False)
        self.active = False


# ---- a measured deploy -------------------------------------------------------------------

@dataclass
class DeployRun:
    """One `freehold deploy` process: its exit code, JSON report and what it cost."""

    label: str
    args: list[str]
    code: int
    doc: dict[str, Any]
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    ssh_counted: int | None
    stderr_tail: str = ""
    machine_cpu_s: float | None = None   # every process of this machine (servers included)
    events: list[str] = field(default_factory=list)

    @property
    def ssh_connections(self) -> int | None:
        """The report's own count when it has one (the driver's), else the firewall's."""
        given = self.doc.get("ssh_connections")
        return int(given) if isinstance(given, int) else self.ssh_counted

    def results(self) -> list[dict[str, Any]]:
        return list(self.doc.get("results") or [])

    def changed_hosts(self) -> list[str]:
        return sorted({r["host"] for r in self.results() if r.get("changed")})

    def changes(self) -> int:
        return int(self.doc.get("changed") or 0)

    def failed(self) -> dict[str, str]:
        """Failed or unreachable hosts and the report's reason for each."""
        out: dict[str, str] = {}
        for r in self.results():
            if r.get("status") in ("failed", "unreachable", "timeout", "timed_out"):
                out.setdefault(r["host"], f"{r.get('role')}: {r.get('status')}: "
                                          f"{(r.get('error') or '').strip()[-300:]}")
        for host in self.doc.get("failed_hosts") or []:
            out.setdefault(host, "named in failed_hosts")
        return out

    def change_names(self) -> dict[str, int]:
        """How many hosts changed each operation (its name)."""
        seen: dict[str, int] = {}
        for r in self.results():
            for name in r.get("changes") or []:
                seen[name] = seen.get(name, 0) + 1
        return dict(sorted(seen.items(), key=lambda kv: -kv[1]))

    def summary(self) -> dict[str, Any]:
        return {"exit_code": self.code, "ok": self.doc.get("ok"), "wall_s": round(self.wall_s, 1),
                "report_seconds": self.doc.get("seconds"),
                "controller_cpu_s": round(self.cpu_s, 1),
                "machine_cpu_s": None if self.machine_cpu_s is None
                else round(self.machine_cpu_s, 1),
                "servers_cpu_s": None if self.machine_cpu_s is None
                else round(max(0.0, self.machine_cpu_s - self.cpu_s), 1),
                "controller_peak_rss_mib": round(self.peak_rss_mib, 1),
                "ssh_connections": self.ssh_connections, "ssh_connections_counted":
                self.ssh_counted, "ssh_connections_reported": self.doc.get("ssh_connections"),
                "changed_operations": self.changes(), "changed_hosts": len(self.changed_hosts()),
                "failed_hosts": self.failed(), "stopped": self.doc.get("stopped"),
                "role_seconds": self.doc.get("role_seconds"),
                "role_cpu_seconds": self.doc.get("role_cpu_seconds"), "events": self.events}


class TreeMeter:
    """CPU-seconds and peak resident memory of a process and its descendants, sampled."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0

    def processes(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self.root, *self.root.children(recursive=True)]
        return []

    def sample(self) -> None:
        rss = 0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                # children_*: the CPU of descendants already reaped (short-lived helpers)
                self.cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                rss += p.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())

    def connected_to(self, addresses: set[str]) -> set[str]:
        """The addresses the tree holds an SSH connection to now."""
        found: set[str] = set()
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                for c in p.net_connections(kind="tcp"):
                    if c.raddr and c.raddr.port == 22 and c.raddr.ip in addresses:
                        found.add(c.raddr.ip)
        return found


def secrets_env(key: bytes) -> dict[str, str]:
    env = {**os.environ, "FREEHOLD_SECRETS_KEY": key.decode()}
    env.pop("FREEHOLD_RELEASE_LABEL", None)
    return env


def deploy_measured(label: str, spec: Path, secrets: Path, key: bytes, roles: list[str],
                    extra: list[str] | None = None, timeout: float = 1800.0,
                    during: Callable[[TreeMeter, float], None] | None = None,
                    counter: SshCounter | None = None, log: Log = _print,
                    every: float = 30.0) -> DeployRun:
    """`freehold deploy SPEC --roles ... --yes --json` in its own process, sampled every 0.5 s;
    `during(meter, elapsed)` is called at each sample (faults mid-run). Killed past `timeout`."""
    args = [sys.executable, "-m", "freehold.deploy", "deploy", str(spec), "--roles",
            ",".join(roles), "--yes", "--json", "--secrets", str(secrets), *(extra or [])]
    before = counter.count() if counter else None
    out_path = secrets.with_name(f"{secrets.stem}.{label.replace(' ', '_')}.out")
    err_path = out_path.with_suffix(".err")
    busy_before = machine_busy_s()
    started = time.monotonic()
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=secrets_env(key),
                                cwd=Path(__file__).resolve().parents[1])
        meter = TreeMeter(proc.pid)
        next_note = started + every
        usage = 0.0
        try:
            while True:
                # wait4: the exit status and the CPU of the process and of every descendant it
                # reaped, exactly (the sampling may miss a short-lived helper or the last 0.5 s)
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    usage = ru.ru_utime + ru.ru_stime
                    break
                elapsed = time.monotonic() - started
                if elapsed > timeout:
                    raise TimeoutError(f"{label}: freehold deploy still running after "
                                       f"{timeout:.0f} s (killed)")
                meter.sample()
                if during is not None:
                    during(meter, elapsed)
                if time.monotonic() >= next_note:
                    next_note += every
                    log(f"  {label}: {elapsed:.0f} s, controller CPU {meter.cpu_s:.0f} s, "
                        f"memory {meter.peak_rss / MIB:.0f} MiB peak")
                time.sleep(0.5)
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.wait(30)
    wall = time.monotonic() - started
    machine = machine_busy_s() - busy_before
    after = counter.count() if counter else None
    stdout = out_path.read_text()
    stderr = err_path.read_text()
    try:
        doc = json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    if not doc:
        raise RuntimeError(f"{label}: freehold deploy exited {proc.returncode} without a JSON "
                           f"report: {stderr.strip()[-2000:]}")
    return DeployRun(label=label, args=args[3:], code=proc.returncode, doc=doc, wall_s=wall,
                     cpu_s=max(meter.cpu_s, usage), peak_rss_mib=meter.peak_rss / MIB,
                     ssh_counted=(after - before) if before is not None and after is not None
                     else None, stderr_tail=stderr.strip()[-2000:], machine_cpu_s=machine)


def machine_busy_s() -> float:
    """CPU-seconds this machine has spent busy since boot (every process: the lab's servers
    share its cores), from /proc/stat: user, nice, system, irq, softirq (guest time is inside
    user already)."""
    t = psutil.cpu_times()
    return float(sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq")))


# ---- faults mid-run ----------------------------------------------------------------------

class FaultMidRun:
    """Kills (or pauses) `victims` once the deploy holds an SSH connection to each of them and
    `settle` seconds more have passed (at `latest` seconds at the latest), from a thread so the
    sampling goes on. `events` says when."""

    def __init__(self, lab: Any, victims: list[str], action: str = "kill", settle: float = 5.0,
                 earliest: float = 5.0, latest: float = 120.0, log: Log = _print) -> None:
        self.lab, self.victims, self.action = lab, victims, action
        self.addresses = {lab.address(v) for v in victims}
        self.settle, self.earliest, self.latest, self.log = settle, earliest, latest, log
        self.seen: set[str] = set()
        self.ready_at: float | None = None
        self.done_at: float | None = None
        self.thread: threading.Thread | None = None
        self.events: list[str] = []
        self.errors: list[str] = []

    def __call__(self, meter: TreeMeter, elapsed: float) -> None:
        if self.thread is not None or not self.victims:
            return
        self.seen |= meter.connected_to(self.addresses - self.seen)
        if self.ready_at is None and (self.seen >= self.addresses or elapsed >= self.latest):
            self.ready_at = elapsed
        if self.ready_at is not None and elapsed >= max(self.earliest,
                                                        self.ready_at + self.settle):
            self.events.append(f"{elapsed:.1f} s: {self.action} {len(self.victims)} servers "
                               f"(connected to {len(self.seen)} of them)")
            self.log(f"  {self.events[-1]}: {', '.join(self.victims)}")
            self.thread = threading.Thread(target=self._act, args=(time.monotonic(),),
                                           daemon=True)
            self.thread.start()

    def _act(self, t0: float) -> None:
        act = self.lab.kill if self.action == "kill" else self.lab.pause
        with ThreadPoolExecutor(max_workers=min(10, len(self.victims))) as pool:
            for victim, exc in zip(self.victims, pool.map(lambda v: _try(act, v), self.victims),
                                   strict=True):
                if exc is not None:
                    self.errors.append(f"{victim}: {exc}")
        self.done_at = time.monotonic() - t0

    def join(self, timeout: float = 120.0) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


def _try(fn: Callable[[str], Any], arg: str) -> Exception | None:
    try:
        fn(arg)
    except Exception as exc:  # noqa: BLE001 - reported with the victim's name
        return exc
    return None


def start_again(lab: Any, hosts: list[str], timeout: float = 300.0) -> float:
    """Boot killed servers again (same disks) and wait for their sshd; returns seconds."""
    t = time.monotonic()
    for h in hosts:
        lab.start(h, wait=False)
    lab.wait_ssh(hosts, timeout=timeout)
    return time.monotonic() - t


def pick_victims(servers: list[str], count: int) -> list[str]:
    """`count` servers spread evenly over the list (so over sites), never the first."""
    if count <= 0:
        return []
    step = len(servers) / count
    return [servers[min(len(servers) - 1, int(step * i + step / 2))] for i in range(count)]


@contextlib.contextmanager
def lab_up(lab: Any, log: Log = _print, keep: bool = False) -> Iterator[float]:
    """A fresh lab (taken down first if a previous run left it), down again at the end unless
    `keep`; yields the boot seconds."""
    lab.down()
    t = time.monotonic()
    n = len(lab.plan.servers)
    try:
        lab.up(timeout=max(180.0, 1.5 * n))
        boot = time.monotonic() - t
        log(f"lab {lab.name}: {n} servers, sshd on all after {boot:.0f} s")
        yield boot
    finally:
        if not keep:
            t = time.monotonic()
            lab.down()
            log(f"lab {lab.name}: down in {time.monotonic() - t:.0f} s")


STATUS_TARGET_S = 20.0  # the issue's bound on `freehold status` over 300 servers


@dataclass
class Observed:
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, bool, Any]] = field(default_factory=list)


def observe(spec_path: Path, lab: Any, key: bytes, log: Log = _print, pairs: int = 20,
            seed: int = 20) -> Observed:
    """After a deploy: `freehold status --json` over every server (the whole command timed),
    Prometheus's active targets on each monitoring server, the WireGuard peers a few servers
    hold and pings between random pairs of servers in different sites."""
    spec = load_spec(spec_path)
    n = len(spec.servers)
    seen = Observed()
    log("status: freehold status --json")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "freehold.deploy", "status", str(spec_path),
                           "--json"], capture_output=True, text=True, timeout=600,
                          env=secrets_env(key), check=False)
    wall = time.monotonic() - t0
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    up = sum(1 for r in report.get("servers", []) if r.get("up"))
    seen.figures["status"] = {"wall_s": round(wall, 1), "probe_round_s": report.get("seconds"),
                              "servers_up": up, "servers": n,
                              "sites": len(report.get("summary", {}).get("sites", {})),
                              # how the servers were judged: {"ssh": n, "prometheus": n}
                              "mode": report.get("mode"),
                              "via": report.get("summary", {}).get("via")}
    log(f"status: {wall:.1f} s for the whole command, {up}/{n} servers up "
        f"(judged via {report.get('summary', {}).get('via')})")
    seen.checks.append(("status: every server answered", up == n,
                        {"up": up, "stderr": proc.stderr[-300:]}))
    seen.checks.append((f"status: within {STATUS_TARGET_S:.0f} s", wall <= STATUS_TARGET_S,
                        round(wall, 1)))

    monitors = [s for s in spec.servers if "monitoring" in s.roles]
    prom: dict[str, Any] = {}
    for m in monitors:
        r = lab.run(m.name, f"curl -fsS --max-time 20 "
                    f"http://{m.mesh_address}:{PROMETHEUS_PORT}/api/v1/targets?state=active",
                    timeout=60)
        try:
            active = json.loads(r.stdout)["data"]["activeTargets"]
        except (ValueError, KeyError, TypeError):
            prom[m.name] = {"error": (r.stderr or r.stdout)[-200:]}
            continue
        node = [t for t in active if t.get("labels", {}).get("job") == "node"]
        prom[m.name] = {"targets": len(active), "node_targets": len(node),
                        "node_up": sum(t.get("health") == "up" for t in node),
                        "down": sorted(t.get("labels", {}).get("instance", "?")
                                       for t in active if t.get("health") != "up")[:10]}
        log(f"prometheus on {m.name}: {prom[m.name]['node_up']}/{len(node)} node targets up, "
            f"{len(active)} targets in all")
    seen.figures["prometheus"] = prom
    seen.checks.append(("prometheus: every server's node exporter up on each monitoring server",
                        bool(monitors) and all(p.get("node_up") == n for p in prom.values()),
                        prom))

    rng = random.Random(seed)
    sample = rng.sample(spec.servers, min(5, n))
    peers = {s.name: lab.run(s.name, "wg show wg0 peers | wc -l", timeout=60).stdout.strip()
             for s in sample}
    seen.checks.append((f"mesh: each sampled server holds {n - 1} peers",
                        all(v == str(n - 1) for v in peers.values()), peers))
    tried, lost = [], []
    for _ in range(pairs * 5):
        if len(tried) >= pairs:
            break
        a, b = rng.sample(spec.servers, 2)
        if a.site == b.site:
            continue
        r = lab.run(a.name, f"ping -n -c2 -W3 -q {b.mesh_address}", timeout=30)
        tried.append(f"{a.name}->{b.name}")
        if r.returncode != 0:
            lost.append(tried[-1])
    seen.figures["mesh"] = {"peers_per_server": peers, "cross_site_pairs": len(tried),
                            "failed_pairs": lost}
    log(f"mesh: {len(tried) - len(lost)}/{len(tried)} random cross-site pairs answer")
    seen.checks.append(("mesh: random cross-site pairs answer", bool(tried) and not lost, lost))
    return seen


# ---- the mesh while it grows ---------------------------------------------------------------

PING_LOG = "/run/freehold-rehearsal-ping.log"


def wg_identity(lab: Any, host: str) -> tuple[str, str, int]:
    """(the wg-quick@wg0 unit's invocation id, wireguard-go's pid, number of peers): a restart
    of the tunnel changes the first two."""
    out = lab.run(host, "systemctl show -p InvocationID --value wg-quick@wg0; "
                        "pgrep -x wireguard-go || echo none; "
                        "wg show wg0 peers | wc -l", check=True).stdout.split()
    return out[0], out[1], int(out[2])


def ping_replies(text: str) -> list[int]:
    """The icmp_seq numbers answered in a `ping -n` log."""
    return [int(m) for m in re.findall(r"icmp_seq=(\d+) ttl=", text)]


class Pinger:
    """A continuous ping (5 a second, bounded to `max_s`) from one lab server to a mesh
    address, run on the server itself, its log read back at the end."""

    def __init__(self, lab: Any, host: str, address: str, max_s: int = 3600) -> None:
        self.lab, self.host, self.address, self.max_s = lab, host, address, max_s
        self.pid: str | None = None

    def start(self, first_replies: int = 5, timeout: float = 30.0) -> None:
        self.pid = self.lab.run(
            self.host, f"setsid ping -n -i 0.2 -w {int(self.max_s)} {self.address} "
                       f"> {PING_LOG} 2>&1 < /dev/null & echo $!", check=True).stdout.strip()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(ping_replies(self.lab.run(self.host, f"cat {PING_LOG}").stdout)) >= \
                    first_replies:
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.host}: no ping answer from {self.address} over the mesh "
                           f"in {timeout:.0f} s")

    def stop(self) -> str:
        """Stop it (its last answers waited for) and return its log."""
        if self.pid is None:
            return ""
        time.sleep(1.5)
        self.lab.run(self.host, f"kill -INT {self.pid}")
        self.pid = None
        time.sleep(0.5)
        return str(self.lab.run(self.host, f"cat {PING_LOG}").stdout)


def lost_pings(text: str) -> list[int]:
    """icmp_seq numbers sent but never answered (up to the last answered one)."""
    got = ping_replies(text)
    return sorted(set(range(1, max(got) + 1)) - set(got)) if got else []
