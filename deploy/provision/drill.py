"""Failover drills on a lab: kill the Patroni primary under a writer, kill a Redis master.

Used by the lab tests and `benchmarks/deploy_bench.py`. The writer runs on the operator's
machine and reaches pgbouncer (→ HAProxy following Patroni's /primary) on a pgbouncer server
through an SSH tunnel; the servers' database ports stay closed outside the mesh.
`lab` is a `deploy.lab.Lab` (anything with ssh_args/run/kill/start works).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.app.devstack import free_port
from freehold.deploy.provision.patroni import cluster_members, protected, summary
from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec
from freehold.deploy.spec.placement import redis_layout
from freehold.roles.pgbouncer.config import PGBOUNCER_PORT
from freehold.roles.postgres.config import APP_DATABASE, APP_USER
from freehold.roles.redis.config import PORT as REDIS_PORT


def deploy_subprocess(spec_path: Path, secrets_path: Path, secrets_key: bytes,
                      args: list[str] | None = None, timeout: float = 900
                      ) -> tuple[int, dict[str, Any]]:
    """`freehold deploy SPEC --yes --json` in its own process, so pyinfra's gevent patching
    stays out of the caller's (tests and benchmarks use threads, boto3 and psycopg).
    Returns the exit code and the JSON report."""
    env = {**os.environ, "FREEHOLD_SECRETS_KEY": secrets_key.decode()}
    proc = subprocess.run([sys.executable, "-m", "freehold.deploy", "deploy", str(spec_path),
                           "--yes", "--json", "--secrets", str(secrets_path), *(args or [])],
                          capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[2])
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"freehold deploy exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-3000:]}") from None


class Tunnel:
    """`ssh -N -L 127.0.0.1:<local>:<target>:<port>` through one lab server; stopped by pid."""

    def __init__(self, lab: Any, via: str, target: str, port: int) -> None:
        self.local_port = free_port()
        args = lab.ssh_args(via)
        self.cmd = [*args[:-1], "-N", "-o", "ExitOnForwardFailure=yes",
                    "-o", "ServerAliveInterval=5",
                    "-L", f"127.0.0.1:{self.local_port}:{target}:{port}", args[-1]]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Tunnel:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"ssh tunnel exited: {err.strip()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.local_port), timeout=0.5):
                return self
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"ssh tunnel to {self.cmd[-1]} not listening after 20 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def patroni_cluster(lab: Any, spec: ClusterSpec, exclude: set[str] | None = None
                    ) -> list[dict[str, Any]]:
    """Patroni's /cluster members, asked of the first member (not excluded) that answers."""
    def run(host: str, cmd: str) -> tuple[int, str]:
        r = lab.run(host, cmd, timeout=15)
        return r.returncode, r.stdout

    return cluster_members(spec, run, exclude or frozenset())


def leader(members: list[dict[str, Any]]) -> str | None:
    for m in members:
        if m.get("role") == "leader":
            return str(m["name"])
    return None


def wait_protected(lab: Any, spec: ClusterSpec, limit_s: float = 120.0) -> list[dict[str, Any]]:
    """Patroni's members once a synchronous standby streams (bounded): a drill that kills the
    primary before then (just after a switchover, say) tests nothing but synchronous mode
    refusing to promote an unsynchronised replica."""
    deadline = time.monotonic() + limit_s
    members = patroni_cluster(lab, spec)
    while not protected(members) and time.monotonic() < deadline:
        time.sleep(2)
        members = patroni_cluster(lab, spec)
    if not protected(members):
        raise RuntimeError(f"no streaming synchronous standby after {limit_s:.0f} s: "
                           f"{summary(members)}")
    return members


@dataclass
class WriterLog:
    acked: list[int] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)


class RowWriter(threading.Thread):
    """Inserts numbered rows, one transaction each, recording which commits were acknowledged.
    Every attempt uses a new number; a failed attempt reconnects (bounded by `stop`)."""

    def __init__(self, dsn: str, table: str = "drill_rows", pause: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.dsn, self.table, self.pause = dsn, table, pause
        self.log = WriterLog()
        self.stop_event = threading.Event()
        self.next_id = 1
        self.crashed: BaseException | None = None  # a bug, not the database: raised by `join`

    def run(self) -> None:
        try:
            self._write()
        except BaseException as e:
            self.crashed = e
            raise

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.crashed is not None:
            raise RuntimeError(f"the drill's writer failed: {type(self.crashed).__name__}: "
                               f"{self.crashed}") from self.crashed

    def _write(self) -> None:
        import psycopg

        conn = None
        while not self.stop_event.is_set():
            n = self.next_id
            self.next_id += 1
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
                conn.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (n,))
                self.log.acked.append(n)
                self.log.ack_times.append(time.monotonic())
            except (psycopg.Error, OSError) as e:  # the database lost: log, reconnect, go on
                self.log.errors.append((time.monotonic(), f"{type(e).__name__}: {e}"[:200]))
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                time.sleep(0.2)
            time.sleep(self.pause)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def app_dsn(port: int, secrets: Secrets, database: str = APP_DATABASE) -> str:
    return (f"host=127.0.0.1 port={port} dbname={database} user={APP_USER} "
            f"password={secrets['postgres_app']} connect_timeout=5")


def outage_end(killed_at: float, ack_times: list[float]) -> float | None:
    """Seconds from the kill to the first acknowledged write after the longest pause in
    acknowledgements that followed it (None while nothing was acknowledged after the kill)."""
    times = [killed_at, *[t for t in ack_times if t > killed_at]]
    if len(times) < 2:
        return None
    gaps = [(times[i + 1] - times[i], i) for i in range(len(times) - 1)]
    _, i = max(gaps)
    return times[i + 1] - killed_at


def stored_ids(dsn: str, limit_s: float = 30.0) -> set[int] | None:
    """Every id in drill_rows, retried while pgbouncer has no primary to log in to (bounded);
    None when none answered within `limit_s`."""
    import psycopg

    deadline = time.monotonic() + limit_s
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                return {r[0] for r in conn.execute("SELECT id FROM drill_rows").fetchall()}
        except psycopg.Error:
            if time.monotonic() >= deadline:
                return None
            time.sleep(1)


def postgres_failover(lab: Any, spec: ClusterSpec, secrets: Secrets, via: str,
                      limit_s: float = 90.0, rejoin_s: float = 150.0) -> dict[str, Any]:
    """Kill the Patroni primary's server while a writer inserts through pgbouncer on `via`.
    Returns the old/new leader, seconds until writes succeeded again, acknowledged rows,
    missing acknowledged rows, and whether the old primary rejoined as a replica."""
    import psycopg

    members = wait_protected(lab, spec)
    old = leader(members)
    if old is None:  # a standby cluster's standby_leader: not a primary to kill
        raise RuntimeError(f"no Patroni leader: {summary(members)}")
    if old == via:
        raise RuntimeError(f"the writer's pgbouncer server {via} is the primary itself")
    killed = False
    try:
        with Tunnel(lab, via, "127.0.0.1", PGBOUNCER_PORT) as tunnel:
            dsn = app_dsn(tunnel.local_port, secrets)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS drill_rows")
                conn.execute("CREATE TABLE drill_rows (id bigint PRIMARY KEY, "
                             "at timestamptz NOT NULL DEFAULT now())")
            writer = RowWriter(dsn)
            writer.start()
            try:
                deadline = time.monotonic() + 20
                while len(writer.log.acked) < 50 and time.monotonic() < deadline:
                    time.sleep(0.1)
                before_kill = len(writer.log.acked)
                killed_at = time.monotonic()
                lab.kill(old)
                killed = True
                recovered: float | None = None
                deadline = killed_at + limit_s
                while time.monotonic() < deadline:
                    now = time.monotonic()
                    recovered = outage_end(killed_at, writer.log.ack_times)
                    flowing = bool(writer.log.ack_times) and \
                        now - writer.log.ack_times[-1] < 1.0
                    if recovered is not None and flowing and \
                            now - (killed_at + recovered) >= 3.0:
                        break
                    time.sleep(0.2)
                time.sleep(2)  # a few more rows on the new primary
            finally:
                writer.stop_event.set()
                writer.join(timeout=60)
            acked = list(writer.log.acked)
            present = stored_ids(dsn)
        missing = sorted(set(acked) - present) if present is not None else None
        after = patroni_cluster(lab, spec, exclude={old})
    finally:
        # the old primary's server comes back (even when the drill failed): Patroni rewinds
        # it and it follows the new leader
        if killed:
            lab.start(old)
    rejoined_s: float | None = None
    state: dict[str, Any] = {}
    started = time.monotonic()
    while time.monotonic() < started + rejoin_s:
        members = patroni_cluster(lab, spec, exclude={old})
        state = next((m for m in members if m.get("name") == old), {})
        if state.get("role") in ("replica", "sync_standby") and \
                state.get("state") in ("running", "streaming"):
            rejoined_s = time.monotonic() - started
            break
        time.sleep(2)
    rewind = lab.run(old, "journalctl -u patroni --no-pager | grep -ci rewind || true",
                     timeout=30).stdout.strip()
    return {"old_leader": old, "new_leader": leader(after), "recovery_s": recovered,
            "acked_before_kill": before_kill, "acked": len(acked), "missing": missing,
            "errors": len(writer.log.errors), "rejoined_s": rejoined_s,
            "old_leader_state": state, "rewind_log_lines": int(rewind or 0),
            "members_after_kill": [{k: m.get(k) for k in ("name", "role", "state")}
                                   for m in after]}


AUTH = "REDISCLI_AUTH=$(awk '/^requirepass/{print $2}' /etc/redis/freehold-auth.conf)"


def redis_cli(lab: Any, host: str, args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """redis-cli on a server, the password read there from its 0600 file (never argv); each
    call bounded (a dead node never answers)."""
    addr = lab.spec.server(host).mesh_address
    return lab.run(host, f"{AUTH} timeout 5 redis-cli -c -h {addr} -p {REDIS_PORT} {args}",
                   timeout=timeout)


def redis_serves(lab: Any, host: str, keys: int = 30) -> bool:
    """cluster_state ok and a write to each of `keys` keys (so every shard is written)."""
    addr = lab.spec.server(host).mesh_address
    try:
        if "cluster_state:ok" not in redis_cli(lab, host, "CLUSTER INFO").stdout:
            return False
        script = " && ".join(f"timeout 3 redis-cli -c -h {addr} -p {REDIS_PORT} SET drill:{i} "
                             f"{i} | grep -q OK" for i in range(keys))
        return lab.run(host, f"{AUTH}; export REDISCLI_AUTH; {script}",
                       timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def redis_failover(lab: Any, spec: ClusterSpec, avoid: set[str], limit_s: float = 60.0,
                   rejoin_s: float = 120.0) -> dict[str, Any]:
    """Kill the server of a Redis master (not in `avoid`); time until the cluster serves every
    slot again, asked from a server in another site; then start it again."""
    view = redis_cli(lab, next(s.name for s in spec.servers_with_role("redis")
                               if s.name not in avoid), "CLUSTER NODES").stdout
    masters = {line.split()[1].split(":")[0] for line in view.splitlines()
               if "master" in line.split()[2] and len(line.split()) > 8}
    by_addr = {s.mesh_address: s for s in spec.servers_with_role("redis")}
    victims = [by_addr[a] for a in sorted(masters) if a in by_addr and by_addr[a].name not in avoid]
    if not victims:
        raise RuntimeError(f"no Redis master outside {sorted(avoid)}: {view}")
    victim = victims[0]
    asker = next(s.name for s in spec.servers_with_role("redis")
                 if s.site != victim.site and s.name not in avoid)
    deadline = time.monotonic() + 60
    while not redis_serves(lab, asker):
        if time.monotonic() >= deadline:
            info = redis_cli(lab, asker, "CLUSTER INFO").stdout.split()
            raise RuntimeError("the Redis cluster does not serve before the drill (60 s): "
                               + " ".join(i for i in info if i.startswith("cluster_")))
        time.sleep(2)
    killed_at = time.monotonic()
    lab.kill(victim.name)
    served: float | None = None
    try:
        while time.monotonic() < killed_at + limit_s:
            if redis_serves(lab, asker):
                served = time.monotonic() - killed_at
                break
            time.sleep(0.5)
    finally:
        lab.start(victim.name)
    back: float | None = None
    started = time.monotonic()
    while time.monotonic() < started + rejoin_s:
        try:
            role = redis_cli(lab, victim.name, "ROLE").stdout.split()
        except subprocess.TimeoutExpired:
            role = []
        if role[:1] == ["slave"] and "connected" in role:
            back = time.monotonic() - started
            break
        time.sleep(2)
    expected = {sh.index: sh for sh in redis_layout(spec)}
    return {"killed": victim.name, "asked": asker, "served_s": served, "rejoined_s": back,
            "shards": len(expected)}
