"""`freehold inventory check|list`: exit codes, tables, JSON, one line per problem."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.spec.synthetic import large_doc, three_site_doc

ROOT = Path(__file__).resolve().parents[2]
LAB = str(ROOT / "inventories" / "lab.yaml")
runner = CliRunner()


def write(tmp_path: Path, doc: dict | str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_check_lab_prints_tables_and_survival() -> None:
    r = runner.invoke(app, ["inventory", "check", LAB])
    assert r.exit_code == 0, r.output
    assert "servers per role per site" in r.output
    assert "servers per role per provider" in r.output
    assert "survives: any one site: yes; any one provider: yes" in r.output


def test_check_json_document() -> None:
    r = runner.invoke(app, ["inventory", "check", LAB, "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["servers"] == 9
    assert [p["name"] for p in doc["providers"]] == ["homelab", "rentco", "cloudco"]
    assert [s["name"] for s in doc["sites"]] == ["a", "b", "c"]
    assert doc["roles"]["etcd"] == 3 and doc["roles"]["redis"] == 6
    assert doc["roles_by_site"]["lb"] == {"a": 2, "b": 2}
    assert doc["errors"] == [] and doc["warnings"] == []
    surv = doc["survives"]
    assert surv["any_site"] is True and surv["any_provider"] is True
    assert set(surv["sites"]) == {"a", "b", "c"}
    assert set(surv["providers"]) == {"homelab", "rentco", "cloudco"}
    assert surv["sites"]["a"]["ok"] is True and surv["sites"]["a"]["reasons"] == []


def test_placement_failure_exits_1_with_errors(tmp_path: Path) -> None:
    doc = three_site_doc()
    doc["sites"][1]["provider"] = "p1"
    doc["servers"][5]["roles"] = ["app", "worker", "backup"]  # b3 no longer an lb
    spec = write(tmp_path, doc)
    r = runner.invoke(app, ["inventory", "check", spec])
    assert r.exit_code == 1
    assert "lb: serving site b has 1 load balancer(s)" in r.output
    assert "any one provider: no — provider p1: etcd loses quorum (1/3 left)" in r.output
    r = runner.invoke(app, ["inventory", "check", spec, "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["errors"] == ["lb: serving site b has 1 load balancer(s) — give 2 servers there "
                             "the lb role (keepalived pair)"]
    assert doc["survives"]["any_provider"] is False


def test_bad_spec_exits_2_one_line_per_problem_no_traceback(tmp_path: Path) -> None:
    doc = three_site_doc()
    doc["servers"][0]["roles"] = ["etcdd"]
    doc["servers"][4]["name"] = "b1"
    spec = write(tmp_path, doc)
    r = runner.invoke(app, ["inventory", "check", spec])
    assert r.exit_code == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {spec}:")
    assert "unknown role 'etcdd' — did you mean 'etcd'?" in lines[0]
    assert "duplicate name 'b1'" in lines[1]
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["inventory", "check", spec, "--json"])
    assert r.exit_code == 2
    assert len(json.loads(r.stdout)["errors"]) == 2


def test_bad_yaml_and_missing_file_exit_2(tmp_path: Path) -> None:
    spec = write(tmp_path, "name: x\nservers:\n  - {name: a\n")
    r = runner.invoke(app, ["inventory", "check", spec])
    assert r.exit_code == 2
    assert f"{spec}:4: (yaml)" in r.stderr
    r = runner.invoke(app, ["inventory", "check", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2
    assert "no such spec file" in r.stderr


def test_300_server_spec_checks_clean(tmp_path: Path) -> None:
    spec = write(tmp_path, large_doc())
    r = runner.invoke(app, ["inventory", "check", spec, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["servers"] >= 300 and len(doc["providers"]) >= 3 and len(doc["sites"]) >= 4
    assert doc["errors"] == []
    assert doc["survives"]["any_site"] and doc["survives"]["any_provider"]


def test_production_example_checks_clean() -> None:
    path = ROOT / "inventories" / "production-example.yaml"
    # a missing file fails: the README's production example must be there and check clean
    assert path.is_file(), (f"{path}: missing — write it with `freehold capacity --accounts 10M "
                            "--min-servers 300 --name production-example --emit-spec "
                            "inventories/production-example.yaml`")
    r = runner.invoke(app, ["inventory", "check", str(path), "--json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0, doc.get("errors")
    assert doc["servers"] >= 300 and len(doc["providers"]) >= 3
    assert doc["survives"]["any_site"] and doc["survives"]["any_provider"]


def test_list_servers_json_and_table() -> None:
    r = runner.invoke(app, ["inventory", "list", LAB, "--role", "etcd", "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert [s["name"] for s in doc["servers"]] == ["a1", "b1", "c1"]
    assert doc["servers"][0]["mesh_address"] == "100.96.0.1"
    r = runner.invoke(app, ["inventory", "list", LAB, "--limit", "site_c"])
    assert r.exit_code == 0 and "c3" in r.output and "a1" not in r.output
