"""The monitoring servers' `targets` probe section against a real Prometheus (Debian 12's
package, the one the monitoring servers run): it scrapes a node-exporter-like endpoint this
test serves and a port nobody listens on; the section, run through sh exactly as the probe
script runs it, is parsed into the verdicts `freehold status` judges plain servers by."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from freehold.app.devstack import free_port
from freehold.deploy.ops import fleet
from freehold.deploy.ops.localprom import LocalPrometheus, MetricsEndpoint, node_job
from freehold.deploy.ops.probes import _section, parse_sections
from tests.waiting import wait_for


@dataclass
class Lab:
    port: int                 # Prometheus's
    exporter: MetricsEndpoint  # n-live's node exporter


@pytest.fixture()
def prometheus(tmp_path: Path) -> Iterator[Lab]:
    if shutil.which("prometheus") is None:
        pytest.skip("no prometheus binary: apt-get install prometheus (scripts/install-deps.sh)")
    exporter = MetricsEndpoint()
    # n-dead: a port nobody listens on; job other scrapes n-live too and is left out
    prom = LocalPrometheus(tmp_path, [
        node_job({"n-live": exporter.address, "n-dead": f"127.0.0.1:{free_port()}"}),
        node_job({"n-other": exporter.address}, job="other")])
    try:
        prom.start()
        yield Lab(prom.port, exporter)
    finally:
        prom.stop()
        exporter.stop()


def section(port: int) -> tuple[int | None, str]:
    """The `targets` section as a monitoring server's probe prints it, run by sh here with
    Debian's python3 as on the servers (its own timeout is long: this machine is shared)."""
    script = _section("targets", fleet.targets_command("127.0.0.1", port), timeout=30)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                         check=False, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return parse_sections(out.stdout)["targets"]


def test_the_probe_section_reads_a_real_prometheus(prometheus: Lab) -> None:
    def scraped() -> dict[str, fleet.Target] | None:
        code, text = section(prometheus.port)
        assert code == 0, text
        got = fleet.parse_targets("m1", text)
        return got if {"n-live", "n-dead"} <= got.keys() and all(
            t.age_s is not None for t in got.values()) else None

    targets = wait_for("both node targets scraped", scraped, timeout=60, every=0.5)
    assert set(targets) == {"n-live", "n-dead"}          # the other job is left out
    live, dead = targets["n-live"], targets["n-dead"]
    assert live.health == "up" and live.interval_s == 1.0 and live.error == ""
    assert live.age_s is not None and -1 < live.age_s < 5, live
    assert dead.health == "down" and "connection refused" in dead.error, dead

    view = fleet.fleet_view({"m1": section(prometheus.port)}, ["n-live", "n-dead", "n-absent"],
                            default_interval_s=10)
    assert view.answered == {"m1": 2} and not view.failed
    verdicts = {n: s.verdict for n, s in view.sightings.items()}
    assert verdicts == {"n-live": fleet.UP, "n-dead": fleet.DOWN, "n-absent": fleet.ABSENT}
    assert view.sightings["n-live"].says().startswith("seen by Prometheus on m1 over the mesh")

    # its node exporter stops: the next scrape fails, and the verdict follows
    prometheus.exporter.stop()

    def failed() -> fleet.Sighting | None:
        seen = fleet.fleet_view({"m1": section(prometheus.port)}, ["n-live"], 10).sightings
        return seen["n-live"] if seen["n-live"].verdict == fleet.DOWN else None

    down = wait_for("n-live's scrape failing", failed, timeout=30, every=0.5)
    assert "Prometheus on m1 failed to scrape its node exporter" in down.says()


def test_a_prometheus_that_does_not_answer_is_said_so() -> None:
    code, text = section(free_port())            # nothing listens there
    assert code == 3 and "curl: (7)" in text and "prometheus gave no target list" in text
    view = fleet.fleet_view({"m1": (code, text)}, ["n1"], 10)
    assert not view.answered and not view.sightings and "curl: (7)" in view.failed["m1"]
