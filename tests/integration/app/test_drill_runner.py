"""A whole drill (deploy.drills.runner.run_drill) against the real app served over HTTPS on
loopback (its certificate checked against its own CA, as the drills check the lab's), with the
real fan-out worker as the fault: stopped while the traffic, the uploads and the image reads go
on, started again as the restore. The servers' side (Patroni, Redis Cluster, the archiver) is
a fake answering as a healthy cluster does: what is under test is what users see."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from freehold.app.devstack import free_port, stop_process
from freehold.app.settings import Settings
from freehold.deploy.drills import runner
from freehold.deploy.drills.accounts import signup
from freehold.deploy.drills.followers import missed
from freehold.deploy.drills.runner import (
    FOLLOWER_CHECK,
    IMAGE_CHECK,
    NO_FAILED_CHECK,
    Session,
    run_drill,
)
from freehold.deploy.drills.scenarios import Ctx, Scenario
from freehold.deploy.drills.traffic import tls
from freehold.deploy.spec import load_spec
from freehold.roles.lb.tls import make_self_signed
from tests.integration.app.conftest import ROOT, start_worker, wait_for
from tests.unit.test_drills import StartingHosts

pytestmark = pytest.mark.integration


class HealthyCluster(StartingHosts):
    """Patroni, Redis and the archiver answering as a protected cluster (a1 the leader); the
    role sampler's SSH is a shell that exits at once."""

    def __init__(self) -> None:
        super().__init__(starting=0)

    def run(self, host: str, cmd: str, timeout: float = 20.0) -> tuple[int | None, str]:
        if "pg_stat_archiver" in cmd:
            return 0, f"{time.time()}|0"
        return super().run(host, cmd, timeout)

    def argv(self, host: str) -> list[str]:
        return ["sh", "-c", "exit 0", "--"]


@pytest.fixture(scope="module")
def https_app(app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[str, str]]:
    """(host:port, CA file) of the app under uvicorn with a self-signed certificate."""
    tmp = tmp_path_factory.mktemp("drill-https")
    pem = make_self_signed(["localhost"], ["127.0.0.1"])
    (tmp / "server.pem").write_bytes(pem)
    end = pem.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
    (tmp / "ca.pem").write_bytes(pem[:end] + b"\n")
    port = free_port()
    log = (tmp / "uvicorn.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "freehold.app.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--ssl-certfile", str(tmp / "server.pem"), "--ssl-keyfile", str(tmp / "server.pem")],
        cwd=ROOT, env={**os.environ, **app_settings.to_env()}, stdout=log,
        stderr=subprocess.STDOUT)

    def up() -> bool:
        assert proc.poll() is None, (tmp / "uvicorn.log").read_text()
        try:
            return httpx.get(f"https://127.0.0.1:{port}/readyz", verify=tls(str(tmp / "ca.pem")),
                             timeout=15).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=300, every=0.5)
        yield f"127.0.0.1:{port}", str(tmp / "ca.pem")
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture(scope="module")
def session(https_app: tuple[str, str]) -> Session:
    vip, ca = https_app
    s = Session({"a": vip}, ca)
    with httpx.Client(verify=s.traffic_ctx(), timeout=30) as client:
        s.tokens["a"] = [signup(client, f"https://{vip}").token for _ in range(2)]
    return s


def fanout_fault(app_settings: Settings, workers: dict[str, Any], log: Path,
                 restart: bool) -> Scenario:
    def inject(ctx: Ctx) -> None:
        stop_process(workers["fanout"])

    def restore(ctx: Ctx) -> None:
        if restart:
            workers["fanout"] = start_worker(app_settings, "fanout", log)

    return Scenario("local-worker-stop", "the fan-out worker stopped", inject, restore, 15.0,
                    False, min_hold_s=4, max_hold_s=10, followers=True, media=True,
                    no_failed_request=True)


def test_a_drill_with_its_own_checks_end_to_end(
        session: Session, app_settings: Settings, workers: dict[str, Any],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(ROOT / "inventories" / "lab.yaml")
    hosts = HealthyCluster()
    scn = fanout_fault(app_settings, workers, tmp_path / "fanout.log", restart=True)
    r = run_drill(scn, spec, hosts, None, session, back=False)
    checks = r.checks()
    assert r.ok, (checks, r.check_notes, r.details)
    assert checks[FOLLOWER_CHECK] and checks[IMAGE_CHECK] and checks[NO_FAILED_CHECK]
    followers, images = r.details["followers"], r.details["images"]
    assert followers["followers"] == 3 and followers["posts_checked"] == r.acked > 0
    assert images["before_fault"] >= 1 and images["during_fault"] >= 1
    assert images["reads_during_fault"]["ok"] > 0 and not images["wrong"]
    lat = r.sites[0].write_latency
    assert lat is not None and lat.requests > 0 and lat.p99_ms is not None
    assert {e.kind for e in r.events} >= {"write", "read", "upload", "image"}
    print(f"\nrestored: {r.acked} acked, {r.check_notes}, write p99 {lat.p99_ms:.0f} ms")

    # the same fault never restored: the posts acknowledged while the worker was away reach
    # no follower, and the check names how many (its poll cut to 3 s here)
    monkeypatch.setattr(runner, "missed",
                        lambda *a, **kw: missed(*a, **{**kw, "limit_s": 3.0, "every": 0.5}))
    scn = fanout_fault(app_settings, workers, tmp_path / "fanout.log", restart=False)
    try:
        r = run_drill(scn, spec, hosts, None, session, back=False)
    finally:
        workers["fanout"] = start_worker(app_settings, "fanout", tmp_path / "fanout2.log")
    assert not r.ok and not r.checks()[FOLLOWER_CHECK], r.details["followers"]
    missing = r.details["followers"]["missing"]
    assert len(missing) == 3 and min(missing.values()) > 0
    assert r.check_notes[FOLLOWER_CHECK].startswith("3 of 3 followers missed posts")
    assert r.checks()[IMAGE_CHECK] and r.checks()[NO_FAILED_CHECK]
    print(f"not restored: {r.acked} acked, {r.check_notes[FOLLOWER_CHECK]}")
