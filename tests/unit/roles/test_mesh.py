"""roles/mesh at scale: 300 peers per server, the bounded peer wait, reload (not restart)."""

from __future__ import annotations

import inspect
import os
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import freehold.roles.mesh as mesh_role
from freehold.deploy.secrets import Secrets, SecretStore
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.roles.common import render, template_path
from freehold.roles.mesh.config import wait_peers_command, waited_peers, wireguard_vars

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(ROOT / "inventories" / "lab-300.yaml")


@pytest.fixture(scope="module")
def secrets(spec: ClusterSpec, tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    store = SecretStore(tmp_path_factory.mktemp("s") / "lab.secrets", spec.name,
                        key=Fernet.generate_key())
    return store.ensure([s.name for s in spec.servers])


def test_every_server_holds_all_299_peers_once(spec: ClusterSpec, secrets: Secrets) -> None:
    tpl = template_path(mesh_role.__file__, "wg0.conf.j2")
    for me in (spec.servers[0], spec.server("chi-n072"), spec.servers[-1]):
        text = render(tpl, **wireguard_vars(spec, me, secrets))
        assert text.count("[Peer]") == 299
        allowed = [ln for ln in text.splitlines() if ln.startswith("AllowedIPs")]
        assert len(set(allowed)) == 299
        keys = [ln for ln in text.splitlines() if ln.startswith("PublicKey")]
        assert len(set(keys)) == 299
        assert f"AllowedIPs = {me.mesh_address}/32" not in text


def test_only_servers_with_roles_wait_and_only_for_such_peers(spec: ClusterSpec) -> None:
    assert waited_peers(spec, spec.server("ash-n001")) == []
    core = [s for s in spec.servers if len(s.roles) > 2]
    peers = waited_peers(spec, spec.server("ash-1"))
    assert {p.name for p in peers} == {s.name for s in core} - {"ash-1"}
    assert len(peers) == 11


def test_a_changed_peer_list_reloads_and_never_restarts() -> None:
    # wg-quick@'s ExecReload is `wg syncconf`: a reload keeps the tunnels already up
    src = inspect.getsource(mesh_role.configure)
    assert "reload=conf.will_change" in src
    assert "restart=dropin.will_change" in src and "restart=conf" not in src


@pytest.fixture()
def fake_ping(tmp_path: Path) -> dict[str, str]:
    """A `ping` on PATH that answers for 127.0.0.* and waits its 1 s for anything else."""
    script = tmp_path / "ping"
    script.write_text('#!/bin/sh\nfor a; do p=$a; done\n'
                      'case "$p" in 127.0.0.*) exit 0;; *) sleep 1; exit 1;; esac\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}


def run_wait(cmd: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True,
                          timeout=30)
    return proc, time.monotonic() - started


def test_peer_wait_returns_at_once_when_every_peer_answers(fake_ping: dict[str, str]) -> None:
    proc, took = run_wait(wait_peers_command([f"127.0.0.{i}" for i in range(1, 40)], 10),
                          fake_ping)
    assert proc.returncode == 0 and proc.stderr == ""
    assert took < 3


def test_peer_wait_pings_in_parallel_and_is_bounded(fake_ping: dict[str, str]) -> None:
    silent = [f"10.9.0.{i}" for i in range(1, 21)]
    proc, took = run_wait(wait_peers_command(["127.0.0.1", *silent], 2), fake_ping)
    assert proc.returncode == 0       # never fails: a peer may be down
    # 20 silent peers of 1 s each, sequentially 20 s per round; in parallel ~1 s a round
    assert took < 8
    assert "mesh: no answer yet from" in proc.stderr
    assert set(proc.stderr.split()) >= set(silent) and "127.0.0.1" not in proc.stderr
