"""Light steady HTTPS load through a virtual IP, counting failed requests (drills, tests and
benchmarks of rolling deploys and server kills). Threads with keep-alive httpx clients; every
request is bounded by a timeout, the load by `stop()` (and `max_seconds`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

PATHS = ("/api/v1/discover/latest", "/readyz", "/api/v1/search/accounts?q=al")


@dataclass
class LoadStats:
    requests: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    fail_times: list[float] = field(default_factory=list)

    def to_doc(self) -> dict[str, Any]:
        return {"requests": self.requests, "failures": self.failures,
                "errors": self.errors[:10]}


class SteadyLoad:
    """`with SteadyLoad("https://198.18.1.5", ca_file) as load: ...; load.stats`"""

    def __init__(self, base: str, ca_file: str | None, threads: int = 3, pause: float = 0.05,
                 timeout: float = 10.0, max_seconds: float = 900.0,
                 paths: tuple[str, ...] = PATHS) -> None:
        self.base, self.ca_file, self.pause, self.timeout = base, ca_file, pause, timeout
        self.paths, self.max_seconds = paths, max_seconds
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def _run(self, index: int) -> None:
        import httpx

        deadline = time.monotonic() + self.max_seconds
        verify: Any = self.ca_file if self.ca_file else True
        n = index
        with httpx.Client(base_url=self.base, verify=verify, timeout=self.timeout,
                          http2=False) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                path = self.paths[n % len(self.paths)]
                n += 1
                err = None
                try:
                    r = client.get(path)
                    if r.status_code >= 500:
                        err = f"{path}: HTTP {r.status_code}"
                except httpx.HTTPError as e:
                    err = f"{path}: {type(e).__name__}: {e}"
                with self._lock:
                    self.stats.requests += 1
                    if err:
                        self.stats.failures += 1
                        self.stats.fail_times.append(time.monotonic())
                        if len(self.stats.errors) < 50:
                            self.stats.errors.append(err[:200])
                self._stop.wait(self.pause)

    def __enter__(self) -> SteadyLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        return self.stats

    def __exit__(self, *exc: object) -> None:
        self.stop()


def first_success(base: str, ca_file: str | None, path: str = "/api/v1/discover/latest",
                  timeout: float = 60.0, every: float = 0.2) -> float | None:
    """Seconds until a request through `base` succeeds (new connection each try), None when
    none does within `timeout`."""
    import httpx

    started = time.monotonic()
    verify: Any = ca_file if ca_file else True
    while time.monotonic() - started < timeout:
        try:
            with httpx.Client(base_url=base, verify=verify, timeout=2.0) as client:
                if client.get(path).status_code < 500:
                    return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(every)
    return None
