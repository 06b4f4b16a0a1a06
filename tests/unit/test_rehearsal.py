"""The scale rehearsal's helpers (deploy/rehearsal.py) and the Ansible side of
benchmarks/scale_bench.py, without servers: the generated spec, the fleet-wide change, the
victims, what a deploy report says, the playbook's variables."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from freehold.deploy import rehearsal as rh
from freehold.deploy.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
NET, MESH = "10.220.128.0/20", "100.114.128.0/17"


def spec_file(tmp_path: Path, servers: int = 30) -> Path:
    return rh.write_spec(tmp_path / "s.yaml", rh.light_spec("s", servers, NET, MESH),
                         header="a header\nof two lines")


def test_the_spec_spreads_servers_over_four_sites_and_three_providers(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path))
    assert len(spec.servers) == 30
    assert sorted(len(spec.servers_in_site(s.name)) for s in spec.sites) == [7, 7, 8, 8]
    assert len({s.provider for s in spec.servers}) == 3
    assert spec.latency("ash", "pdx") == 62
    assert all(set(s.roles) == {"base", "mesh"} for s in spec.servers)
    assert len({s.public_address for s in spec.servers}) == 30
    assert spec_file(tmp_path).read_text().startswith("# a header\n# of two lines\n")


def test_300_servers_fit_and_too_many_are_refused(tmp_path: Path) -> None:
    assert len(load_spec(spec_file(tmp_path, 300)).servers) == 300
    try:
        rh.light_spec("s", 961, NET, MESH)
    except ValueError as e:
        assert "at most 960" in str(e)
    else:
        raise AssertionError("961 servers accepted")


def test_the_fleet_wide_change_adds_one_key_and_keeps_the_header(tmp_path: Path) -> None:
    path = spec_file(tmp_path)
    before = load_spec(path).role_settings("base")["admins"][0]["ssh_keys"]
    key = rh.add_admin_key(path)
    after = load_spec(path).role_settings("base")["admins"][0]["ssh_keys"]
    assert after == [*before, key] and key.startswith("ssh-ed25519 ")
    assert path.read_text().startswith("# a header\n")


def test_victims_are_spread_and_distinct() -> None:
    names = [f"n{i:03d}" for i in range(300)]
    v = rh.pick_victims(names, 10)
    assert len(set(v)) == 10 and names[0] not in v
    assert rh.pick_victims(names, 0) == []


def test_a_report_names_failed_hosts_with_their_reasons() -> None:
    doc = {"ok": False, "changed": 3, "failed_hosts": ["b"], "results": [
        {"host": "a", "role": "base", "status": "changed", "changed": 3, "changes": ["x", "y"]},
        {"host": "b", "role": "base", "status": "unreachable", "changed": 0,
         "error": "cannot connect: timed out"},
        {"host": "b", "role": "mesh", "status": "skipped", "changed": 0}]}
    run = rh.DeployRun("t", [], 1, doc, 1.0, 1.0, 1.0, 7)
    assert run.failed() == {"b": "base: unreachable: cannot connect: timed out"}
    assert run.changed_hosts() == ["a"] and run.change_names() == {"x": 1, "y": 1}
    assert run.ssh_connections == 7
    assert rh.DeployRun("t", [], 0, {"ssh_connections": 3}, 1, 1, 1, 7).ssh_connections == 3


def test_the_playbook_variables_are_roles_base_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import ansible_side
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    spec = load_spec(spec_file(tmp_path))
    server = spec.servers[0]
    vars_ = ansible_side.base_host_vars(spec, server)
    files = {f["path"]: f for f in vars_["base_files"]}
    nft = files["/etc/nftables.conf"]["content"]
    assert server.name in nft and spec.servers[1].public_address in nft
    assert "net.core.somaxconn = 4096" in files["/etc/sysctl.d/60-freehold.conf"]["content"]
    keys = spec.role_settings("base")["admins"][0]["ssh_keys"]
    assert vars_["admins"] == [{"name": "ops", "authorized_keys": "\n".join(keys) + "\n"}]
    cfg = ansible_side.write_inventory(spec, tmp_path / "key", tmp_path / "known", tmp_path / "a",
                                       forks=7)
    text = cfg.read_text()
    assert "host_key_checking = True" in text and "forks = 7" in text
    inv = yaml.safe_load((tmp_path / "a" / "inventory.yml").read_text())
    assert "StrictHostKeyChecking=yes" in inv["all"]["vars"]["ansible_ssh_common_args"]
    assert len(inv["all"]["hosts"]) == 30
