"""`freehold deploy` when servers fail mid-run, on a lab of its own (6 servers, 2 sites, roles
base and mesh): one killed while its packages install is reported (status, one-line reason,
exit code 1) while the other five converge, and a rerun once it is back changes that server only;
one paused mid-run is cut off by --host-timeout instead of being waited for.

The lab is named like the package's small lab (FREEHOLD_LAB_TEST_NAME, FREEHOLD_LAB_TEST_NET:
its /22 is 12 /24s past the small lab's), so two test runs side by side do not meet."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from freehold.deploy.lab import Lab
from tests.lab.cli import LabSecrets

from .conftest import small_lab_name, small_lab_net

pytestmark = pytest.mark.timeout(480)   # a ceiling; about 4 minutes on a quiet machine

ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
name: {name}
providers:
  - {{name: p1, kind: owned}}
  - {{name: p2, kind: rented}}
sites:
  - {{name: a, provider: p1, network: {a}.0/24, latency_ms: {{b: 10}}}}
  - {{name: b, provider: p2, network: {b}.0/24}}
lab: {{network: {a}.0/22}}
defaults: {{cores: 1, ram_gib: 1, disk_gib: 10}}
servers:
  - {{name: "a[1:3]", site: a, address: "{a}.[10:12]"}}
  - {{name: "b[1:3]", site: b, address: "{b}.[10:12]"}}
"""
SERVERS = ["a1", "a2", "a3", "b1", "b2", "b3"]
ROLES = ["--roles", "base,mesh"]


@pytest.fixture(scope="module")
def fault_lab(lab_ready: None, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Lab, Path, LabSecrets]]:
    spec = tmp_path_factory.mktemp("faults") / "faults.yaml"
    spec.write_text(SPEC.format(name=small_lab_name("kill"), a=small_lab_net(12),
                                b=small_lab_net(13)))
    lab = Lab.from_spec(spec)
    lab.down()                               # a run killed midway left nothing behind
    lab.up(timeout=120)
    try:
        yield lab, spec, LabSecrets.of(lab)
    finally:
        lab.down()


class Deploy:
    """`freehold deploy SPEC --yes --json ...` in its own process; its stderr (one plain line
    per phase start and end: not a terminal) read line by line, so a fault lands mid-run."""

    def __init__(self, spec: Path, secrets: LabSecrets, args: list[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "freehold.deploy", "deploy", str(spec), "--yes", "--json",
             "--secrets", str(spec.with_suffix(".secrets")), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "FREEHOLD_SECRETS_KEY": secrets.key.decode(),
                 "COLUMNS": "200"})
        self.out: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stderr, True),
                                         daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stdout, False),
                                         daemon=True)]
        for t in self.readers:
            t.start()

    def _read(self, stream: Any, is_err: bool) -> None:
        for line in stream:
            if is_err:
                self.err.append(line)
                self.lines.put(line)
            else:
                self.out.append(line)

    def wait_for(self, text: str, timeout: float) -> float:
        """Seconds since start when a stderr line containing `text` appeared."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if text in line:
                return time.monotonic() - self.started
        raise AssertionError(f"no {text!r} within {timeout:.0f} s: {''.join(self.err)[-2000:]}")

    def finish(self, timeout: float) -> tuple[int, dict[str, Any], float]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(f"deploy still running after {timeout:.0f} s: "
                                 f"{''.join(self.err)[-2000:]}") from None
        for t in self.readers:
            t.join(timeout=10)
        took = time.monotonic() - self.started
        try:
            return code, json.loads("".join(self.out)), took
        except json.JSONDecodeError:
            raise AssertionError(f"deploy exited {code}: {''.join(self.err)[-3000:]}") from None


def deploy(spec: Path, secrets: LabSecrets, args: list[str], timeout: float,
           fault: Callable[[Deploy], None] | None = None) -> tuple[int, dict[str, Any], float]:
    run = Deploy(spec, secrets, args)
    try:
        if fault:
            fault(run)
    finally:
        out = run.finish(timeout)
    return out


def statuses(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in doc["host_status"]}


def test_a_server_killed_mid_run_is_reported_and_a_rerun_changes_it_only(
        fault_lab: tuple[Lab, Path, LabSecrets]) -> None:
    lab, spec, secrets = fault_lab
    victim = "b2"

    def kill_while_base_installs(run: Deploy) -> None:
        run.wait_for("base: 6 server(s)", timeout=60)
        time.sleep(4)                         # its facts read, its packages installing
        lab.kill(victim)

    try:
        code, doc, took = deploy(spec, secrets, ROLES, timeout=300,
                                 fault=kill_while_base_installs)
    finally:
        lab.start(victim)
    assert code == 1 and not doc["ok"] and doc["stopped"] is None, doc["stopped"]
    assert doc["failed_hosts"] == [victim] and doc["rerun"] == [victim], doc["host_status"]
    hosts = statuses(doc)
    bad = hosts.pop(victim)
    assert bad["status"] in ("failed", "unreachable")
    assert bad["reason"].startswith("base: ") and "\n" not in bad["reason"], bad
    assert {h["status"] for h in hosts.values()} == {"changed"}     # the others converged
    mesh = {r["host"]: r["status"] for r in doc["results"] if r["role"] == "mesh"}
    assert victim not in mesh or mesh[victim] == "skipped"
    assert all(mesh[h] == "changed" for h in hosts), mesh
    # one connection per server for the whole deploy (the victim's only until it died)
    assert doc["ssh_connections"] == len(SERVERS), doc["ssh_connections"]

    code, doc, took = deploy(spec, secrets, ROLES, timeout=300)
    assert code == 0 and doc["ok"], doc["host_status"]
    changed = {h["host"] for h in doc["host_status"] if h["changed"]}
    assert changed == {victim}, doc["host_status"]
    assert doc["ssh_connections"] == len(SERVERS)


def test_a_paused_server_is_cut_off_by_the_host_timeout(
        fault_lab: tuple[Lab, Path, LabSecrets]) -> None:
    lab, spec, secrets = fault_lab
    victim, timeout = "a3", 15

    def pause_mid_run(run: Deploy) -> None:
        run.wait_for("base: 6 server(s)", timeout=60)
        lab.pause(victim)

    try:
        code, doc, took = deploy(spec, secrets, [*ROLES, "--host-timeout", str(timeout)],
                                 timeout=240, fault=pause_mid_run)
    finally:
        lab.resume(victim)
    assert code == 1 and doc["failed_hosts"] == [victim], doc["host_status"]
    hosts = statuses(doc)
    bad = hosts.pop(victim)
    assert bad["status"] == "failed"
    assert f"no answer within {timeout} s" in bad["reason"] and "--host-timeout" in bad["reason"]
    assert {h["status"] for h in hosts.values()} == {"ok"}, hosts    # converged before
    # cut off after the timeout, not waited for: the other five's no-op deploy plus ~15 s
    assert took < 150, took
