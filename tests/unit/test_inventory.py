"""Spec -> pyinfra Inventory."""

from pathlib import Path

from pyinfra.api import Inventory

from freehold.deploy.inventory import build_inventory, select_servers
from freehold.deploy.spec import load_spec, parse_spec
from freehold.deploy.spec.synthetic import large_doc

ROOT = Path(__file__).resolve().parents[2]


def lab():
    return load_spec(ROOT / "inventories" / "lab.yaml")


def test_groups_per_role_site_and_provider() -> None:
    inv = build_inventory(lab())
    assert isinstance(inv, Inventory)
    assert len(inv) == 9
    names = lambda group: sorted(h.name for h in inv.get_group(group))  # noqa: E731
    assert names("etcd") == ["a1", "b1", "c1"]
    assert names("redis") == ["a1", "a2", "b1", "b2", "c1", "c2"]
    assert names("lb") == ["a2", "a3", "b2", "b3"]
    assert names("site_b") == ["b1", "b2", "b3"]
    assert names("provider_cloudco") == ["c1", "c2", "c3"]
    assert len(inv.get_group("base")) == 9 and len(inv.get_group("mesh")) == 9
    assert set(inv.get_host("a2").groups) == {"base", "mesh", "redis", "lb", "pgbouncer",
                                             "monitoring", "dns", "site_a", "provider_homelab"}


def test_host_data_carries_roles_site_provider_addresses_and_ssh() -> None:
    spec = lab()
    inv = build_inventory(spec, ssh={"ssh_key": "/keys/lab",
                                     "ssh_known_hosts_file": "/keys/known_hosts"})
    host = inv.get_host("b2")
    server = spec.server("b2")
    data = host.data
    assert data.roles == server.roles
    assert (data.site, data.provider, data.provider_kind) == ("b", "rentco", "rented")
    assert data.public_address == data.private_address == "198.18.2.11"
    assert data.mesh_address == server.mesh_address
    assert data.ssh_hostname == "198.18.2.11"
    assert (data.ssh_user, data.ssh_port) == ("root", 22)
    assert data.ssh_key == "/keys/lab"
    assert data.ssh_known_hosts_file == "/keys/known_hosts"
    assert data.ssh_strict_host_key_checking == "yes"
    assert (data.redis_shard, data.redis_master) == (0, "a1")  # a1 -> b2
    assert data.postgres_primary_site == "a" and data.postgres_standby_site == "b"
    assert data.spec_name == "lab" and data.mesh_network == "100.96.0.0/16"
    media = inv.get_host("c1").data
    assert media.seaweed_master is True and media.seaweed_data_center == "cloudco"
    assert media.seaweed_rack == "c"


def test_no_key_means_no_ssh_key_data() -> None:
    host = build_inventory(lab()).get_host("a1")
    assert host.data.get("ssh_key") is None


def test_roles_and_limit_select_hosts() -> None:
    spec = lab()
    assert sorted(h.name for h in build_inventory(spec, roles=["postgres"])) == ["a1", "b1",
                                                                                 "c1"]
    inv = build_inventory(spec, roles=["redis"], limit=["site_a", "c*"])
    assert sorted(h.name for h in inv) == ["a1", "a2", "c1", "c2"]
    assert [s.name for s in select_servers(spec, limit=["b"])] == ["b1", "b2", "b3"]
    assert [s.name for s in select_servers(spec, limit=["provider_homelab"])] == ["a1", "a2",
                                                                                 "a3"]
    assert len(build_inventory(spec, limit=["nothing"])) == 0


def test_large_spec_inventory() -> None:
    inv = build_inventory(parse_spec(large_doc()))
    assert len(inv) == 303
    assert len(inv.get_group("app")) == 200
    assert len(inv.get_group("site_d")) == len(inv.get_group("provider_cloud-co"))
