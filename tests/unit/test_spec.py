"""Cluster spec loading: every spec error asserted by its message, with file and YAML line."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from freehold.deploy.spec import ROLES, SpecError, load_spec, loads_spec, parse_spec
from freehold.deploy.spec.synthetic import large_doc, three_site_doc

ROOT = Path(__file__).resolve().parents[2]


def problems_of(doc: dict[str, Any] | str) -> list[str]:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(SpecError) as e:
        loads_spec(text, "t.yaml")
    return e.value.problems


def test_lab_spec_matches_the_contract() -> None:
    spec = load_spec(ROOT / "inventories" / "lab.yaml")
    assert spec.name == "lab"
    assert [s.name for s in spec.sites] == ["a", "b", "c"]
    assert len({s.provider for s in spec.sites}) == 3
    assert {p.kind for p in spec.providers} == {"owned", "rented", "cloud"}
    assert 9 <= len(spec.servers) <= 12
    assert str(spec.lab.network) == "198.18.0.0/15"
    for i, site in enumerate(spec.sites, start=1):
        assert str(site.network) == f"198.18.{i}.0/24"
    for s in spec.servers:
        assert s.public_address == s.private_address
        assert s.ssh_user == "root"
        assert int(s.private_address.rsplit(".", 1)[1]) >= 10
        assert s.roles[:2] == ["base", "mesh"]
    for role in ROLES:
        if role != "dns":
            assert spec.servers_with_role(role), role
    assert len(spec.servers_with_role("etcd")) == 3
    assert len(spec.servers_with_role("redis")) == 6
    assert spec.site("b").latency_ms["a"] == spec.site("a").latency_ms["b"] == 10
    assert spec.server("a1").site == "a" and spec.server("a1").provider == "homelab"


def test_mesh_addresses_are_unique_inside_the_mesh_network_and_stable_per_site() -> None:
    doc = three_site_doc()
    spec = parse_spec(doc)
    mesh = {s.name: s.mesh_address for s in spec.servers}
    assert len(set(mesh.values())) == len(mesh)
    assert all(a.startswith("100.") for a in mesh.values())
    # adding a server at the end of site a's list moves nobody else
    doc["servers"].insert(3, {"name": "a4", "site": "a", "address": "10.0.1.13",
                              "roles": ["app"]})
    grown = parse_spec(doc)
    assert all(grown.server(n).mesh_address == a for n, a in mesh.items())


def test_ranges_expand_in_spec_order_with_addresses() -> None:
    spec = parse_spec(large_doc())
    assert len(spec.servers) == 303
    apps = spec.servers_with_role("app")
    assert len(apps) == 200
    assert apps[0].name == "a-app-01" and apps[0].private_address == "10.1.4.10"
    assert apps[49].name == "a-app-50" and apps[49].private_address == "10.1.4.59"


def test_address_start_counts_up() -> None:
    doc = three_site_doc()
    doc["servers"].append({"name": "w-[1:3]", "site": "c", "address_start": "10.0.3.254",
                           "roles": ["worker"]})
    spec = parse_spec(doc)
    assert [spec.server(f"w-{i}").public_address for i in (1, 2, 3)] == [
        "10.0.3.254", "10.0.3.255", "10.0.4.0"]


def test_separate_public_and_private_ranges() -> None:
    doc = three_site_doc()
    doc["servers"].append({"name": "app-[01:03]", "site": "a",
                           "public_address": "203.0.113.[10:12]",
                           "private_address_start": "10.9.0.10", "roles": ["app"]})
    s = parse_spec(doc).server("app-02")
    assert (s.public_address, s.private_address) == ("203.0.113.11", "10.9.0.11")


def test_unknown_role_suggests_the_right_one() -> None:
    doc = three_site_doc()
    doc["servers"][2]["roles"] = ["lb", "ap"]
    (p,) = problems_of(doc)
    assert p.startswith("t.yaml:")
    assert "servers[2].roles[1]: unknown role 'ap' — did you mean 'app'?" in p


def test_unknown_role_in_role_settings() -> None:
    doc = three_site_doc()
    doc["roles"]["redsi"] = {}
    (p,) = problems_of(doc)
    assert "roles.redsi: unknown role 'redsi' — did you mean 'redis'?" in p


def test_duplicate_name_names_both_entries() -> None:
    doc = three_site_doc()
    doc["servers"][4]["name"] = "a1"
    (p,) = problems_of(doc)
    assert "servers[4].name: duplicate name 'a1' (also servers[0]" in p
    assert "rename one" in p


def test_overlapping_name_ranges_are_duplicates() -> None:
    doc = three_site_doc()
    doc["servers"] += [
        {"name": "app-[01:10]", "site": "a", "address": "10.0.1.[100:109]", "roles": ["app"]},
        {"name": "app-[08:12]", "site": "b", "address": "10.0.2.[100:104]", "roles": ["app"]},
    ]
    problems = problems_of(doc)
    assert len(problems) == 3  # app-08, app-09, app-10
    assert all("servers[10].name: duplicate name 'app-" in p for p in problems)
    assert "ranges must not overlap" in problems[0]


def test_overlapping_address_ranges_clash() -> None:
    doc = three_site_doc()
    doc["servers"] += [
        {"name": "x-[1:5]", "site": "a", "address": "10.0.1.[100:104]", "roles": ["app"]},
        {"name": "y-[1:5]", "site": "a", "address": "10.0.1.[104:108]", "roles": ["app"]},
    ]
    (p,) = problems_of(doc)
    assert "servers[10].public_address: address clash: y-1 and x-5 (servers[9]) both use " \
           "10.0.1.104" in p


def test_address_clash_between_single_servers() -> None:
    doc = three_site_doc()
    doc["servers"][5]["address"] = "10.0.2.10"
    (p,) = problems_of(doc)
    assert "address clash: b3 and b1 (servers[3]) both use 10.0.2.10" in p


@pytest.mark.parametrize(("name", "address", "message"), [
    ("x-[9:1]", "10.0.1.[100:108]", "servers[9].name: range 'x-[9:1]' runs backwards"),
    ("x-[1:5", "10.0.1.100", "servers[9].name: 'x-[1:5' is not a range"),
    ("x-[1:20]", "10.0.1.[100:109]",
     "servers[9].address: address range '10.0.1.[100:109]' is exhausted: 10 addresses for 20"),
    ("x-[1:51]", "10.0.1.[250:300]", "servers[9].address: '10.0.1.256' (from"),
    ("x-[1:3]", "10.0.1.100", "servers[9].address: one address '10.0.1.100' for 3 names"),
])
def test_bad_ranges(name: str, address: str, message: str) -> None:
    doc = three_site_doc()
    doc["servers"].append({"name": name, "site": "a", "address": address, "roles": ["app"]})
    problems = problems_of(doc)
    assert len(problems) == 1, problems
    assert message in problems[0]


def test_bad_yaml_gives_its_line() -> None:
    text = "name: x\nproviders:\n  - {name: p, kind: owned}\nsites: [\n  - a\n"
    (p,) = problems_of(text)
    assert p.startswith("t.yaml:5: (yaml):")
    assert "fix the YAML syntax" in p


def test_unknown_field_and_bad_value_give_their_lines() -> None:
    text = (ROOT / "inventories" / "lab.yaml").read_text()
    text = text.replace("  ssh_port: 22\n", "  ssh_port: 22\n  colour: red\n")
    text = text.replace("kind: cloud", "kind: sky")
    lines = text.splitlines()
    colour = next(i for i, line in enumerate(lines, 1) if "colour" in line)
    sky = next(i for i, line in enumerate(lines, 1) if "kind: sky" in line)
    problems = problems_of(text)
    assert f"t.yaml:{sky}: providers[2].kind: 'sky' is not allowed — input should be " \
           "'owned', 'rented' or 'cloud'" in problems
    assert any(p.startswith(f"t.yaml:{colour}: defaults.colour: unknown field — remove it")
               for p in problems)


def test_semantic_problem_carries_the_server_line() -> None:
    text = (ROOT / "inventories" / "lab.yaml").read_text().replace(
        "roles: [lb, app, worker, backup]", "roles: [lb, app, wroker, backup]")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "wroker" in s)
    (p,) = problems_of(text)
    assert p.startswith(f"t.yaml:{line}: servers[")
    assert "unknown role 'wroker' — did you mean 'worker'?" in p


def test_missing_fields_and_unknown_references() -> None:
    doc = three_site_doc()
    del doc["servers"][0]["site"]
    doc["sites"][1]["provider"] = "nope"
    doc["servers"][1]["site"] = "z"
    doc["sites"][2]["latency_ms"] = {"q": 3}
    problems = problems_of(doc)
    assert any("servers[0].site: missing — add this field" in p for p in problems)
    # structural errors are reported first; fix them and the references are checked
    doc["servers"][0]["site"] = "a"
    problems = problems_of(doc)
    assert any("sites[1].provider: unknown provider 'nope'" in p for p in problems)
    assert any("servers[1].site: unknown site 'z'" in p for p in problems)
    assert any("sites[2].latency_ms.q: 'q' is not another site" in p for p in problems)
    assert len(problems) == 3


def test_server_provider_must_be_its_sites() -> None:
    doc = three_site_doc()
    doc["servers"][0]["provider"] = "p2"
    (p,) = problems_of(doc)
    assert "servers[0].provider: 'p2' but site a is at provider p1" in p


def test_standby_site_must_exist() -> None:
    doc = three_site_doc()
    doc["roles"]["postgres"]["standby_site"] = "x"
    (p,) = problems_of(doc)
    assert "roles.postgres.standby_site: unknown site 'x'" in p


def test_no_address() -> None:
    doc = three_site_doc()
    del doc["servers"][0]["address"]
    (p,) = problems_of(doc)
    assert "servers[0]: no address — give address (or public_address and private_address)" in p


def test_lab_addresses_stay_in_their_site_network_and_off_the_router() -> None:
    text = (ROOT / "inventories" / "lab.yaml").read_text()
    (p,) = problems_of(text.replace("198.18.2.12", "198.18.9.12"))
    assert "198.18.9.12 is outside site b's network 198.18.2.0/24" in p
    (p,) = problems_of(text.replace("198.18.2.12", "198.18.2.1"))
    assert "198.18.2.1 is reserved" in p


def test_every_problem_is_reported_one_line_each() -> None:
    doc = three_site_doc()
    doc["servers"][0]["roles"] = ["etcdd"]
    doc["servers"][4]["name"] = "b1"
    doc["servers"][8]["address"] = "10.0.3.10"
    problems = problems_of(doc)
    assert len(problems) == 3
    assert all("\n" not in p and " — " in p and p.startswith("t.yaml:") for p in problems)


def test_missing_file_is_one_problem() -> None:
    with pytest.raises(SpecError) as e:
        load_spec(Path("/nonexistent/spec.yaml"))
    (p,) = e.value.problems
    assert p.startswith("/nonexistent/spec.yaml: cannot read the spec")


def test_single_site_spec_loads() -> None:
    spec = load_spec(ROOT / "inventories" / "single-site.yaml")
    assert len(spec.servers) == 3 and len(spec.sites) == 1
    assert all("etcd" in s.roles for s in spec.servers)  # from defaults.roles


def test_duplicate_yaml_key_gives_its_line() -> None:
    text = (ROOT / "inventories" / "lab.yaml").read_text().replace(
        "  ssh_port: 22\n", "  ssh_port: 22\n  ssh_port: 2222\n")
    line = text.splitlines().index("  ssh_port: 2222") + 1
    (p,) = problems_of(text)
    assert p == (f"t.yaml:{line}: defaults.ssh_port: key 'ssh_port' given twice (the last one "
                 "would win) — keep one")


def test_ssh_key_paths_are_relative_to_the_spec_file(tmp_path: Path) -> None:
    doc = three_site_doc()
    doc["defaults"]["ssh_key"] = "keys/id_ed25519"
    doc["servers"][1]["ssh_key"] = "/abs/key"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = load_spec(path)
    assert spec.server("a1").ssh_key == str(tmp_path / "keys" / "id_ed25519")
    assert spec.server("a2").ssh_key == "/abs/key"
