"""The lab on real systemd-nspawn servers: 3 servers in 2 sites (see conftest.small_lab)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from freehold.deploy.lab import Lab, LabError
from freehold.deploy.lab import container as lab_container
from freehold.deploy.lab.hygiene import snapshot

from .conftest import small_lab_name, small_lab_net, write_small_spec

pytestmark = pytest.mark.timeout(600)  # a ceiling: apt and boots on a busy machine


def ping_rtts(lab: Lab, src: str, dst: str, count: int = 4) -> list[float]:
    """Round trips (ms) of the pings from one server to another that came back."""
    out = lab.run(src, f"ping -n -c {count} -i 0.2 -W 1 {lab.address(dst)}").stdout
    return [float(x) for x in re.findall(r"time=([0-9.]+) ms", out)]


def reaches(lab: Lab, src: str, dst: str) -> bool:
    return lab.run(src, f"ping -n -c 2 -i 0.2 -W 1 {lab.address(dst)}").returncode == 0


def test_servers_have_their_names_addresses_and_systemd(small_lab: Lab) -> None:
    for name in ("a1", "a2", "b1"):
        out = small_lab.run(name, "hostname; ip -4 -o addr show dev eth0; "
                                  "systemctl is-system-running --wait; id -u", check=True)
        lines = out.stdout.split("\n")
        assert lines[0] == name
        assert f"inet {small_lab.address(name)}/24" in lines[1]
        assert lines[2] in ("running", "degraded"), out.stdout
        assert lines[3] == "0"
    assert [r["state"] for r in small_lab.status()] == ["running"] * 3


def test_host_keys_are_checked_never_ignored(small_lab: Lab, tmp_path: Path) -> None:
    known = small_lab.known_hosts_path.read_text().splitlines()
    assert len(known) == 3
    # the key in known_hosts is the one the server presents
    pub = small_lab.run("a1", "cat /etc/ssh/ssh_host_ed25519_key.pub", check=True).stdout.split()
    assert f"{small_lab.address('a1')},a1 {pub[0]} {pub[1]}" in known
    # another key for the same address: ssh refuses to connect
    forged = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    other = (tmp_path / "k.pub").read_text().split()
    forged.write_text(f"{small_lab.address('a1')} {other[0]} {other[1]}\n")
    args = [a.replace(str(small_lab.known_hosts_path), str(forged))
            for a in small_lab.ssh_args("a1")]
    proc = subprocess.run([*args, "true"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 255
    assert "host key" in proc.stderr.lower() or "verification failed" in proc.stderr.lower()


def test_cross_site_reach_and_latency(small_lab: Lab) -> None:
    across = ping_rtts(small_lab, "a1", "b1")
    assert len(across) == 4
    assert min(across) >= 40.0          # the spec's 40 ms round trip between a and b
    inside = ping_rtts(small_lab, "a1", "a2")
    assert len(inside) == 4
    assert min(inside) < 40.0           # no latency inside a site
    small_lab.slow("a-b", 120, 0)
    try:
        assert min(ping_rtts(small_lab, "b1", "a2")) >= 120.0
        assert small_lab.links()["a>b"] == {"delay_ms": 60.0, "loss_pct": 0.0}
    finally:
        small_lab.heal()
    assert small_lab.links()["b>a"] == {"delay_ms": 20.0, "loss_pct": 0.0}
    assert min(ping_rtts(small_lab, "a1", "b1")) >= 40.0


def test_total_loss_cuts_the_link(small_lab: Lab) -> None:
    small_lab.slow("b-a", 40, 100)
    try:
        assert not reaches(small_lab, "a1", "b1")
        assert reaches(small_lab, "a1", "a2")
    finally:
        small_lab.heal()
    assert reaches(small_lab, "a1", "b1")


def test_partition_cuts_and_heal_restores(small_lab: Lab) -> None:
    assert reaches(small_lab, "a1", "b1")
    small_lab.partition("b")
    try:
        assert not reaches(small_lab, "a1", "b1")
        assert not reaches(small_lab, "b1", "a2")
        assert reaches(small_lab, "a1", "a2")             # site a still talks inside
        assert small_lab.run("b1", "true").returncode == 0  # the operator still gets in
        states = {r["name"]: r["partitioned"] for r in small_lab.status()}
        assert states == {"a1": False, "a2": False, "b1": True}
    finally:
        small_lab.heal()
    assert reaches(small_lab, "a1", "b1")
    # one server from another in the same site (bridged traffic)
    small_lab.partition("a1", from_="a2")
    try:
        assert not reaches(small_lab, "a1", "a2")
        assert reaches(small_lab, "a1", "b1")
    finally:
        small_lab.heal()
    assert reaches(small_lab, "a2", "a1")


def test_kill_makes_unreachable_and_start_brings_back(small_lab: Lab) -> None:
    small_lab.run("b1", "echo survived > /root/marker && sync", check=True)
    small_lab.kill("b1")
    assert lab_container.cgroup_pids(small_lab.plan, small_lab.plan.server("b1")) == []
    assert not small_lab.ssh_ready("b1")
    assert small_lab.run("b1", "true", timeout=30).returncode == 255
    assert not reaches(small_lab, "a1", "b1")
    assert {r["name"]: r["state"] for r in small_lab.status()}["b1"] == "stopped"
    small_lab.start("b1")
    assert small_lab.run("b1", "cat /root/marker", check=True).stdout == "survived\n"
    assert reaches(small_lab, "a1", "b1")


def test_stop_is_clean_pause_freezes(small_lab: Lab) -> None:
    assert small_lab.stop("a2") is True
    assert {r["name"]: r["state"] for r in small_lab.status()}["a2"] == "stopped"
    small_lab.start("a2")
    small_lab.pause("a2")
    try:
        assert {r["name"]: r["state"] for r in small_lab.status()}["a2"] == "paused"
        assert not small_lab.ssh_ready("a2", timeout=1.0)   # sshd frozen: no banner
    finally:
        small_lab.resume("a2")
    assert small_lab.run("a2", "true", check=True).returncode == 0


def test_tun_device_for_wireguard_go(small_lab: Lab) -> None:
    out = small_lab.run("a1", "test -c /dev/net/tun && ip tuntap add dev wgtest mode tun "
                              "&& ip -o link show wgtest && ip link del wgtest")
    assert out.returncode == 0, out.stderr
    assert "wgtest" in out.stdout


def test_up_twice_changes_nothing(small_lab: Lab) -> None:
    plan = small_lab.plan
    before = snapshot().lab_items(plan)
    pids = {s.name: lab_container.nspawn_pid(plan, s) for s in plan.servers}
    known = small_lab.known_hosts_path.read_text()
    small_lab.up()
    assert snapshot().lab_items(plan) == before
    assert {s.name: lab_container.nspawn_pid(plan, s) for s in plan.servers} == pids
    assert small_lab.known_hosts_path.read_text() == known


def test_packages_download_once_per_machine(small_lab: Lab) -> None:
    """apt on two servers: the shared cache serves the second (the first may hit too)."""
    cmd = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
           "apt-get install -y -qq --reinstall tree >/dev/null && tree --version")
    for name in ("a1", "b1"):
        out = small_lab.run(name, cmd, timeout=180)
        assert out.returncode == 0, out.stderr
    log = (small_lab.plan.state_dir / "aptproxy.log").read_text().splitlines()
    tree = [line.split()[0] for line in log if "/tree_" in line]
    assert tree.count("miss") <= 1 and tree.count("hit") >= 1, tree


def test_overlapping_range_is_refused(small_lab: Lab, tmp_path: Path) -> None:
    """Another lab on the small lab's addresses: up refuses before touching anything."""
    other = Lab.from_spec(write_small_spec(tmp_path / "clash.yaml",
                                                name=small_lab_name("clash")))
    with pytest.raises(LabError, match="overlaps the machine's route"):
        other.up()
    assert not other.plan.state_dir.exists()
    assert not snapshot().lab_items(other.plan)["netns"]


def test_down_leaves_no_trace(lab_ready: None, tmp_path: Path) -> None:
    lab = Lab.from_spec(write_small_spec(tmp_path / "hygiene.yaml", name=small_lab_name("hyg"),
                                         net=small_lab_net(8)))
    lab.down()
    before = snapshot()
    assert not any(before.lab_items(lab.plan).values())
    lab.up(timeout=120)
    try:
        during = snapshot().lab_items(lab.plan)
        assert len(during["netns"]) == 4 and len(during["links"]) == 1
        assert len(during["nft_tables"]) == 1 and len(during["mounts"]) >= 3
        assert lab.run("b1", "hostname", check=True).stdout == "b1\n"
        lab.kill("a2")                      # a killed server leaves its nspawn bits too
        lab.partition("a")
    finally:
        lab.down()
    after = snapshot()
    assert not any(after.lab_items(lab.plan).values())
    # nothing else was removed: what existed before and was not the lab's is still there
    for kind in ("netns", "links", "nft_tables", "mounts", "routes"):
        gone = getattr(before, kind) - getattr(after, kind)
        assert not gone, (kind, gone)
    assert not lab.plan.state_dir.exists()
    lab.down()                              # twice: still fine
