"""A real Prometheus on loopback, and node-exporter-like endpoints for it to scrape: what
tests/integration/test_prometheus_targets.py and benchmarks/status_prometheus.py run the
monitoring servers' `targets` probe section against. Debian 12's `prometheus` package (the
monitoring servers' own) gives the binary; every process started here is stopped by its pid."""

from __future__ import annotations

import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from freehold.app.devstack import LocalServiceError, free_port, stop_process, wait_port
from freehold.deploy.ops.fleet import NODE_JOB

NODE_METRICS = b"# TYPE node_load1 gauge\nnode_load1 0.5\n"


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(NODE_METRICS)))
        self.end_headers()
        self.wfile.write(NODE_METRICS)

    def log_message(self, *_args: object) -> None:
        pass


class MetricsEndpoint:
    """`GET /metrics` on 127.0.0.1 (an ephemeral port), served by a thread until stop()."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.address = f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving (again: nothing): the next scrape of it is refused."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def node_job(targets: dict[str, str], job: str = NODE_JOB) -> dict[str, Any]:
    """A scrape job over `targets` (instance name -> host:port), each labelled with its
    instance name as roles/monitoring labels the servers."""
    return {"job_name": job, "static_configs": [
        {"targets": [address], "labels": {"instance": name}}
        for name, address in targets.items()]}


class LocalPrometheus:
    """`prometheus` with `jobs` (scrape configs), scraping every `interval_s`, its data in
    `root`, listening on 127.0.0.1:`port`."""

    def __init__(self, root: Path, jobs: list[dict[str, Any]], interval_s: int = 1) -> None:
        self.root, self.jobs, self.interval_s = root, jobs, interval_s
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 30.0) -> LocalPrometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise LocalServiceError("prometheus not found: run `apt-get install prometheus` "
                                    "(scripts/install-deps.sh does)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "prometheus.yml"
        interval = f"{self.interval_s}s"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": self.jobs}))
        self._proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port, timeout=timeout)
        except LocalServiceError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None
