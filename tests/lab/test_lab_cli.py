"""`freehold lab ...` on the small lab: JSON status, ssh exit codes, faults, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from freehold.deploy.lab import Lab

FREEHOLD = [sys.executable, "-m", "freehold.deploy"]
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)  # a ceiling: each CLI call is a fresh process


def freehold(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FREEHOLD, *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300, check=False)  # a ceiling for a busy machine


def test_status_json_and_ssh(small_lab: Lab, small_lab_spec: Path) -> None:
    out = freehold("lab", "status", "--json", "--spec", str(small_lab_spec))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["lab"] == small_lab.plan.name and doc["up"] is True
    assert [(s["name"], s["site"], s["address"]) for s in doc["servers"]] == [
        (n, n[0], small_lab.address(n)) for n in ("a1", "a2", "b1")]
    assert small_lab.address("b1").endswith(".10") and small_lab.address("a2").endswith(".11")
    assert doc["servers"][2]["roles"] == ["base", "mesh", "postgres"]
    assert doc["links"]["a>b"]["delay_ms"] == 20.0
    out = freehold("lab", "ssh", "b1", "--spec", str(small_lab_spec), "hostname")
    assert (out.returncode, out.stdout) == (0, "b1\n")
    assert freehold("lab", "ssh", "b1", "--spec", str(small_lab_spec), "exit 7").returncode == 7


def test_fault_commands(small_lab: Lab, small_lab_spec: Path) -> None:
    spec = ["--spec", str(small_lab_spec)]
    b1 = small_lab.address("b1")
    out = freehold("lab", "fault", "partition", "a2", "--from", "b", *spec)
    assert out.returncode == 0, out.stderr
    try:
        assert small_lab.run("a2", f"ping -c1 -W1 {b1}").returncode != 0
        assert small_lab.run("a1", f"ping -c1 -W1 {b1}").returncode == 0
        out = freehold("lab", "fault", "slow", "a-b", "--delay", "90ms", "--loss", "0%", *spec)
        assert out.returncode == 0, out.stderr
        assert small_lab.links()["b>a"]["delay_ms"] == 45.0
    finally:
        assert freehold("lab", "fault", "heal", *spec).returncode == 0
    assert small_lab.run("a2", f"ping -c1 -W1 {b1}").returncode == 0
    bad = freehold("lab", "fault", "slow", "a-x", "--delay", "10ms", *spec)
    assert bad.returncode == 2
    assert "not SITE-SITE" in bad.stderr and "Traceback" not in bad.stderr
    bad = freehold("lab", "fault", "kill", "zz", *spec)
    assert bad.returncode == 2 and "no server 'zz'" in bad.stderr


def test_missing_packages_is_one_line(small_lab_spec: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}         # no ip, nft, nspawn, debootstrap
    out = freehold("lab", "up", "--spec", str(small_lab_spec), env=env)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "apt-get install" in lines[0] and "systemd-container" in lines[0]


def test_not_root_is_one_line(small_lab_spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a normal user (geteuid faked: the venv's python is not runnable by `nobody` here)."""
    from typer.testing import CliRunner

    from freehold.deploy.cli import app
    from freehold.deploy.lab import host

    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)
    out = CliRunner().invoke(app, ["lab", "up", "--spec", str(small_lab_spec)])
    assert out.exit_code == 2
    assert "needs root" in out.output and "sudo" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_bad_spec_is_one_line_per_problem(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nproviders: []\n")
    out = freehold("lab", "status", "--spec", str(spec))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert all(line.startswith("error:") for line in out.stderr.splitlines() if line.strip())
