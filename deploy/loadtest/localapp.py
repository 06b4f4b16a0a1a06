"""The app served locally for load tests and benchmarks: uvicorn workers plus the app's workers.

`LocalApp(settings, root).start()` runs `python -m freehold.app.serve` (N web workers, optionally
pinned to CPUs with taskset) and the fan-out, notify, moderation and trends workers as child
processes, on loopback; `.stop()` stops each one by its own pid. PostgreSQL, Redis and
SeaweedFS come from `app.devstack` (the caller starts them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from freehold.app.devstack import LocalServiceError, free_port
from freehold.app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_WORKERS = ("fanout", "notify", "moderation", "trends")


def load_test_settings(settings: Settings) -> Settings:
    """Rate limits as production sees them from many clients, for a generator on one address.

    Production spreads its users over millions of addresses; the generator gives each simulated
    user its own X-Forwarded-For address (trusted from loopback), so per-IP limits stay as set.
    Per-account limits stay too. Only the sign-up limit per IP is raised for the flood.
    """
    return settings.replace(rl_signup_per_ip=max(settings.rl_signup_per_ip, 100))


@dataclass
class LocalApp:
    settings: Settings
    root: Path
    web_workers: int = 1
    cpus: str | None = None  # e.g. "0": pin the web workers (taskset)
    app_workers: tuple[str, ...] = APP_WORKERS
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, cmd: list[str]) -> None:
        env = {**os.environ, **self.settings.to_env()}
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start(self, timeout: float = 180.0) -> LocalApp:
        """Start the workers and the web server; wait (bounded) until /readyz answers. On any
        failure everything started here is stopped before the error propagates."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            for kind in self.app_workers:
                self._spawn(f"worker-{kind}", [sys.executable, "-m", "freehold.app.worker", kind])
            web = [sys.executable, "-m", "freehold.app.serve", "--workers", str(self.web_workers),
                   "--port", str(self.port), "--no-migrate"]
            if self.cpus is not None and shutil.which("taskset"):
                web = ["taskset", "-c", self.cpus, *web]
            self._spawn("web", web)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.procs["web"].poll() is not None:
                raise LocalServiceError(f"the app exited ({self.procs['web'].returncode}); see "
                                   f"{self.root / 'web.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise LocalServiceError(f"the app at {self.url} is not ready after {timeout:.0f} s "
                                f"({last})")

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.procs.items()}

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.procs.clear()
