"""What the servers say during and after a drill: each PostgreSQL member's role sampled twice a
second (were two primaries ever writable at once?), and the checks that the cluster is protected
again (a synchronous standby streaming, every Redis master with a connected replica, WAL
archived). Commands reach the servers through a `Hosts` (the lab's SSH, or Fabric on real
servers); every one is bounded in time."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from freehold.deploy.drills.events import RoleSample, parse_role_line
from freehold.deploy.provision.drill import leader
from freehold.deploy.provision.patroni import cluster_members, member_states, protected
from freehold.deploy.spec import ClusterSpec
from freehold.roles.backup.config import OS_USER as BACKUP_USER
from freehold.roles.backup.config import STANZA
from freehold.roles.redis.config import PORT as REDIS_PORT

SAMPLE_EVERY_S = 0.5
PSQL = "cd / && PGCONNECT_TIMEOUT=1 timeout 3 runuser -u postgres -- psql -X -A -t -q"
REDIS_AUTH = "REDISCLI_AUTH=$(awk '/^requirepass/{print $2}' /etc/redis/freehold-auth.conf)"


class Hosts(Protocol):
    def run(self, host: str, cmd: str, timeout: float = 20.0) -> tuple[int | None, str]:
        """(exit code or None when the server could not be reached in time, stdout)."""

    def argv(self, host: str) -> list[str]:
        """An ssh command line to `host` (a command appended runs there)."""


@dataclass
class LabHosts:
    lab: Any

    def run(self, host: str, cmd: str, timeout: float = 20.0) -> tuple[int | None, str]:
        try:
            r = self.lab.run(host, cmd, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, ""
        return (None if r.returncode == 255 else r.returncode), r.stdout

    def argv(self, host: str) -> list[str]:
        return list(self.lab.ssh_args(host, connect_timeout=3))


@dataclass
class SshHosts:
    """Real servers, over the deploy's SSH settings (host keys checked)."""

    spec: ClusterSpec
    ssh: Any  # deploy.ssh.SSHSettings

    def run(self, host: str, cmd: str, timeout: float = 20.0) -> tuple[int | None, str]:
        from freehold.deploy.ops.remote import run_one

        out = run_one(self.spec.server(host), cmd, self.ssh, timeout=timeout)
        return (out.code if out.reachable else None), out.stdout

    def argv(self, host: str) -> list[str]:
        srv = self.spec.server(host)
        args = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                "-o", "StrictHostKeyChecking=yes", "-p", str(srv.ssh_port)]
        for kh in self.ssh.known_hosts:
            args += ["-o", f"UserKnownHostsFile={kh}"]
        if self.ssh.key:
            args += ["-i", str(self.ssh.key)]
        return [*args, f"{srv.ssh_user}@{srv.address}"]


def role_loop(count: int) -> str:
    """Prints `<epoch> f|t|x` (primary, replica, no answer) every SAMPLE_EVERY_S, `count` times;
    ends early when its SSH session goes (SIGHUP, or a write to a closed pipe)."""
    return (f"for i in $(seq 1 {count}); do r=$({PSQL} -c 'select pg_is_in_recovery()' "
            f"2>/dev/null); echo \"$(date +%s.%N) ${{r:-x}}\" || exit 0; "
            f"sleep {SAMPLE_EVERY_S}; done")


class RoleSampler:
    """One SSH session per PostgreSQL member running role_loop; lines read as they come.
    A member killed by the drill simply stops answering; `stop` ends every session by pid."""

    def __init__(self, hosts: Hosts, members: list[str], limit_s: float) -> None:
        self.hosts, self.members = hosts, members
        self.count = int(limit_s / SAMPLE_EVERY_S) + 1
        self.samples: list[RoleSample] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        for m in self.members:
            proc = subprocess.Popen([*self.hosts.argv(m), role_loop(self.count)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            self._procs.append(proc)
            t = threading.Thread(target=self._read, args=(m, proc), daemon=True)
            self._threads.append(t)
            t.start()

    def _read(self, member: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            s = parse_role_line(member, line)
            if s is not None:
                with self._lock:
                    self.samples.append(s)

    def stop(self) -> list[RoleSample]:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)


# ---- the cluster's state ----------------------------------------------------------------------

def patroni_members(spec: ClusterSpec, hosts: Hosts, exclude: set[str] | frozenset[str] = (
        frozenset())) -> list[dict[str, Any]]:
    """Patroni's /cluster members, asked of the first member (not excluded) that answers."""
    return cluster_members(spec, lambda host, cmd: hosts.run(host, cmd, timeout=10), exclude)


def redis_nodes(spec: ClusterSpec, hosts: Hosts, exclude: set[str] | frozenset[str] = (
        frozenset())) -> tuple[str, str] | None:
    """(CLUSTER INFO, CLUSTER NODES) from the first Redis server that answers."""
    for s in spec.servers_with_role("redis"):
        if s.name in exclude:
            continue
        cli = f"{REDIS_AUTH} timeout 4 redis-cli -h {s.mesh_address} -p {REDIS_PORT}"
        code, out = hosts.run(s.name, f"{cli} CLUSTER INFO && echo ---- && {cli} CLUSTER NODES",
                              timeout=10)
        if code == 0 and "----" in out:
            info, nodes = out.split("----", 1)
            return info, nodes
    return None


def redis_masters(nodes: str) -> dict[str, str]:
    """{node id: mesh address} of the masters serving slots (not failed)."""
    out = {}
    for line in nodes.splitlines():
        f = line.split()
        if len(f) > 8 and "master" in f[2] and "fail" not in f[2]:
            out[f[0]] = f[1].split(":")[0]
    return out


def redis_protected(info: str, nodes: str) -> bool:
    """cluster_state ok and every master serving slots has a connected replica."""
    if "cluster_state:ok" not in info:
        return False
    masters = redis_masters(nodes)
    covered = set()
    for line in nodes.splitlines():
        f = line.split()
        if len(f) >= 8 and "slave" in f[2] and "fail" not in f[2] and f[7] == "connected":
            covered.add(f[3])
    return bool(masters) and set(masters) <= covered


def archiver(hosts: Hosts, host: str) -> tuple[float, float] | None:
    """(last archived, last failed) epoch seconds from pg_stat_archiver (0 for never)."""
    code, out = hosts.run(host, f"{PSQL} -c \"select coalesce(extract(epoch from "
                                f"last_archived_time), 0), coalesce(extract(epoch from "
                                f"last_failed_time), 0) from pg_stat_archiver\"", timeout=10)
    parts = out.strip().split("|")
    if code != 0 or len(parts) != 2:
        return None
    return float(parts[0]), float(parts[1])


def current_walfile(hosts: Hosts, host: str) -> str | None:
    """The WAL file the primary writes now (24 hex digits), None without an answer."""
    code, out = hosts.run(host, f"{PSQL} -c 'select pg_walfile_name(pg_current_wal_lsn())'",
                          timeout=10)
    name = out.strip()
    return name if code == 0 and len(name) == 24 else None


PGBACKREST_INFO = (f"cd / && timeout 30 runuser -u {BACKUP_USER} -- pgbackrest "
                   f"--stanza={STANZA} --output=json info")


def archive_max(info_json: str) -> str | None:
    """The newest WAL file a repository's `pgbackrest info` lists as archived (of every
    database and timeline), None when it lists none or the answer is not its JSON."""
    try:
        doc = json.loads(info_json)
    except ValueError:
        return None
    tops = [str(a["max"]) for st in (doc if isinstance(doc, list) else [])
            for a in st.get("archive") or [] if isinstance(a, dict) and a.get("max")]
    return max(tops, key=lambda w: w[8:], default=None)


def segment_reached(top: str | None, wal: str) -> bool:
    """`top` at or past `wal`: the log and segment numbers (the last 16 digits) grow across
    timelines, the timeline (the first 8) changes at a failover."""
    return top is not None and top[8:] >= wal[8:]


def repo_archive_max(hosts: Hosts, repo: str) -> str | None:
    """The newest archived WAL file in the repository on `repo` (its host's pgbackrest info)."""
    code, out = hosts.run(repo, PGBACKREST_INFO, timeout=40)
    return archive_max(out) if code == 0 else None


@dataclass(frozen=True)
class ArchiveCheck:
    """A WAL segment switched on the primary, and whether (and when) a repository listed it."""

    repos: tuple[str, ...]
    segment: str | None
    archived: str | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.seconds is not None

    def to_doc(self) -> dict[str, Any]:
        return {"repositories": list(self.repos), "segment": self.segment,
                "newest_archived": self.archived, "ok": self.ok,
                "seconds": None if self.seconds is None else round(self.seconds, 1)}


def wal_reaches(hosts: Hosts, primary: str, repos: list[str], limit_s: float = 90.0,
                every: float = 2.0) -> ArchiveCheck:
    """Writes a few bytes of WAL on `primary`, switches the segment, and polls (bounded) the
    repositories on `repos` until one lists it archived."""
    started = time.monotonic()
    nudge_wal(hosts, primary)
    wal = current_walfile(hosts, primary)
    if wal is None:
        return ArchiveCheck(tuple(repos), None)
    switch_wal(hosts, primary)
    top = None
    while True:
        for r in repos:
            top = repo_archive_max(hosts, r)
            if segment_reached(top, wal):
                return ArchiveCheck(tuple(repos), wal, top, time.monotonic() - started)
        if time.monotonic() - started + every > limit_s:
            return ArchiveCheck(tuple(repos), wal, top)
        time.sleep(every)


def switch_wal(hosts: Hosts, host: str) -> None:
    """A WAL segment to archive now (else archive_timeout's minute) on the primary."""
    hosts.run(host, f"{PSQL} -c 'select pg_switch_wal()'", timeout=10)


def nudge_wal(hosts: Hosts, host: str) -> None:
    """A few bytes of WAL on the primary. A member that rejoins after pg_rewind may only serve
    once the primary has written WAL past the point the rewind recorded (its minimum recovery
    point); a primary with no traffic writes none, and the member stays "starting" (seen on
    the lab after a switch back with the drill's traffic stopped)."""
    hosts.run(host, f"{PSQL} -c \"select pg_logical_emit_message(false, 'freehold-drill', "
                    f"'rejoin')\"", timeout=10)


@dataclass
class Protection:
    """Seconds after the restore until each part was protected again (None: not within the
    bound)."""

    sync_standby_s: float | None = None
    redis_replicas_s: float | None = None
    wal_archiving_s: float | None = None
    leader: str | None = None
    notes: list[str] = field(default_factory=list)
    # every PostgreSQL member of the spec running again (the failed part rejoined, not only
    # the synchronous standby: a third member left "starting" is a cluster one loss from
    # read-only, and failed the monitoring test after a drill in CI)
    members_s: float | None = None

    @property
    def ok(self) -> bool:
        return None not in (self.sync_standby_s, self.members_s, self.redis_replicas_s,
                            self.wal_archiving_s)

    @property
    def seconds(self) -> tuple[float | None, ...]:
        return (self.sync_standby_s, self.members_s, self.redis_replicas_s,
                self.wal_archiving_s)

    def to_doc(self) -> dict[str, Any]:
        r = (lambda v: None if v is None else round(v, 1))  # noqa: E731
        return {"sync_standby_s": r(self.sync_standby_s), "members_s": r(self.members_s),
                "redis_replicas_s": r(self.redis_replicas_s),
                "wal_archiving_s": r(self.wal_archiving_s), "leader": self.leader,
                "ok": self.ok, "notes": self.notes}


def all_members_running(spec: ClusterSpec, members: list[dict[str, Any]]) -> bool:
    """Every PostgreSQL server of the spec is a member that runs (leader) or streams."""
    states = {name: state for name, _, state in member_states(members)}
    return all(states.get(s.name) in ("running", "streaming")
               for s in spec.servers_with_role("postgres"))


def wait_protected(spec: ClusterSpec, hosts: Hosts, since: float, limit_s: float = 240.0,
                   every: float = 2.0, clock: Callable[[], float] = time.time,
                   repos: list[str] | None = None) -> Protection:
    """Polls until a synchronous standby streams, every PostgreSQL member runs again, every
    Redis master has a connected replica and WAL archived after `since` (a segment switched
    once the primary is known), bounded. While a member is not running yet the leader writes a
    few bytes of WAL (`nudge_wal`) every round.

    WAL archived: by default PostgreSQL's own view (pg_stat_archiver: archive-push succeeded,
    i.e. every repository took the segment). With `repos` (repository hosts), the switched
    segment listed by any of those repositories' `pgbackrest info` instead: a drill that lost
    one repository's site measures the one that stayed, not the dead one's return."""
    p = Protection()
    deadline = time.monotonic() + limit_s
    switched = False
    wal: str | None = None
    if repos:
        p.notes.append(f"WAL archiving measured on {', '.join(repos)}")
    while time.monotonic() < deadline:
        now = clock()
        if p.sync_standby_s is None or p.members_s is None:
            members = patroni_members(spec, hosts)
            if p.sync_standby_s is None and protected(members):
                p.sync_standby_s = now - since
                p.leader = leader(members)
            if p.members_s is None and all_members_running(spec, members):
                p.members_s = now - since
            if p.members_s is None and (current := leader(members)) is not None:
                nudge_wal(hosts, current)
        if p.redis_replicas_s is None and spec.servers_with_role("redis"):
            got = redis_nodes(spec, hosts)
            if got is not None and redis_protected(*got):
                p.redis_replicas_s = now - since
        if not spec.servers_with_role("redis"):
            p.redis_replicas_s = 0.0
        if p.wal_archiving_s is None and p.leader:
            if not switched:
                if repos:  # a segment with WAL in it: switching an empty one does nothing
                    nudge_wal(hosts, p.leader)
                wal = current_walfile(hosts, p.leader) if repos else None
                switch_wal(hosts, p.leader)
                switched = not repos or wal is not None
            if repos:
                if wal is not None and any(segment_reached(repo_archive_max(hosts, r), wal)
                                           for r in repos):
                    p.wal_archiving_s = clock() - since
            else:
                arch = archiver(hosts, p.leader)
                if arch is not None and arch[0] >= since and arch[0] > arch[1]:
                    p.wal_archiving_s = clock() - since
        if p.ok:
            break
        time.sleep(every)
    return p


def ready(spec: ClusterSpec, hosts: Hosts, limit_s: float = 240.0) -> Protection:
    """The cluster protected before a drill starts (a drill on an unprotected cluster measures
    nothing but the last one's aftermath)."""
    return wait_protected(spec, hosts, since=0.0, limit_s=limit_s)
