"""Role order, role modules, quorum-aware stopping, the report and the CLI's input checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.provision.quorum import quorum_risks
from freehold.deploy.provision.report import DeployReport, HostRoleResult
from freehold.deploy.provision.summary import closing_lines, summary_table
from freehold.deploy.spec import ROLES, load_spec
from freehold.roles.ports import Ports
from freehold.roles.registry import ROLE_ORDER, Role, RoleError, ordered_roles, role

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab.yaml"
runner = CliRunner()

# what each role needs running before it
NEEDS = {"mesh": {"base"}, "etcd": {"mesh"}, "postgres": {"etcd"}, "pgbouncer": {"postgres"},
         "redis": {"mesh"}, "media": {"mesh"}}


def test_dependency_order() -> None:
    assert ROLE_ORDER[:2] == ("base", "mesh")
    for name, needs in NEEDS.items():
        for need in needs:
            assert ROLE_ORDER.index(need) < ROLE_ORDER.index(name), (name, need)
    assert set(ROLE_ORDER) <= set(ROLES)


def test_every_role_in_the_order_has_steps_and_ports() -> None:
    for name in ROLE_ORDER:
        this = role(name)
        assert this.name == name and this.steps and all(callable(s) for s in this.steps)
        assert isinstance(this.ports, Ports)
    with pytest.raises(RoleError, match="unknown role no_such_role"):
        role("no_such_role")


def test_a_malformed_role_fails_where_it_is_declared() -> None:
    def step() -> None: ...

    for bad, field in [({"steps": ()}, "steps"), ({"steps": (step, "configure")}, "steps"),
                       ({"steps": [step]}, "steps"), ({"steps": (step,), "ports": (80,)}, "ports"),
                       ({"steps": (step,), "units": "x.service"}, "units"),
                       ({"steps": (step,), "packages": ["curl"]}, "packages")]:
        with pytest.raises(RoleError, match=rf"roles/demo: Role\.{field}"):
            Role("demo", **bad)  # type: ignore[arg-type]
    assert Role("demo", steps=(step,)).packages(None) == []


def test_ordered_roles_subset_and_unknown() -> None:
    assert ordered_roles(["redis", "base"]) == ["base", "redis"]
    assert ordered_roles(None) == list(ROLE_ORDER)
    with pytest.raises(RoleError, match="unknown role"):
        ordered_roles(["base", "nope"])


def test_quorum_risks_on_the_lab_spec() -> None:
    spec = load_spec(LAB)
    assert quorum_risks(spec, set()) == []
    assert quorum_risks(spec, {"a1"}) == []          # one etcd/postgres/redis/media member
    assert quorum_risks(spec, {"a3", "b3"}) == []    # serving servers never stop a deploy
    risks = quorum_risks(spec, {"a1", "b1"})         # two of three etcd members
    assert any(r.startswith("etcd") for r in risks)
    assert quorum_risks(spec, {s.name for s in spec.servers}) == ["every server failed"]


def test_report_rerun_and_summary() -> None:
    report = DeployReport(spec="lab", dry_run=False, roles=["base", "etcd"],
                          hosts=["a1", "b1", "c1"])
    report.results += [HostRoleResult("a1", "base", changed=3, status="changed"),
                       HostRoleResult("b1", "base", status="unreachable", error="timeout"),
                       HostRoleResult("c1", "base", unchanged=5, status="ok"),
                       HostRoleResult("b1", "etcd", status="skipped")]
    assert report.failed_hosts == ["b1"]
    assert report.rerun_hosts() == ["b1"]
    assert not report.ok and report.changed == 3
    lines = closing_lines(report, "inventories/lab.yaml")
    assert "--limit b1" in lines[-1]
    assert summary_table(report).row_count == 4
    doc = report.to_doc()
    assert doc["rerun"] == ["b1"] and doc["ok"] is False


def test_deploy_refuses_without_yes_when_not_a_tty() -> None:
    r = runner.invoke(app, ["deploy", str(LAB)])
    assert r.exit_code == 2 and "--yes" in r.output


def test_deploy_bad_input_is_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["deploy", str(LAB), "--roles", "base,nope", "--yes"])
    assert r.exit_code == 2 and "unknown role" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["deploy", str(LAB), "--limit", "zz9", "--yes"])
    assert r.exit_code == 2 and "matches no server" in r.output
    r = runner.invoke(app, ["plan", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "no such spec" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    r = runner.invoke(app, ["plan", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_dry_run_follows_if_did_change_guards() -> None:
    from types import SimpleNamespace

    from freehold.deploy.provision.pyinfra_fork import if_will_change

    class Meta:
        def __init__(self, change: bool) -> None:
            self.will_change = change

        def did_change(self) -> bool:  # pragma: no cover - only its identity is read
            return self.will_change

    def op(cond: object) -> SimpleNamespace:
        return SimpleNamespace(global_arguments={"_if": cond})

    assert if_will_change(op(None))
    assert if_will_change(op(Meta(True).did_change))
    assert not if_will_change(op(Meta(False).did_change))
    assert not if_will_change(op([Meta(True).did_change, Meta(False).did_change]))
    assert if_will_change(op(lambda: False))  # unknown callables: assume it runs
