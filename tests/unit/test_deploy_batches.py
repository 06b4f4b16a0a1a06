"""`freehold deploy --batch/--max-fail/--parallel/--host-timeout`: the values parsed (a bad one is
one line naming the option), batches cut as Ansible's `serial`, the failure budget as its
`max_fail_percentage` (more than P % of a batch stops the deploy), and the driver's loop over
batches (which batch stopped it, which hosts were skipped) with the phases faked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.provision import driver
from freehold.deploy.provision.batches import (
    BatchSize,
    OptionError,
    over_budget,
    parse_batch,
    parse_count,
    parse_max_fail,
    parse_seconds,
    split,
)
from freehold.deploy.spec import load_spec
from freehold.deploy.ssh import SSHSettings

HOSTS = [f"h{i}" for i in range(1, 11)]


def test_batch_values() -> None:
    assert parse_batch("3") == BatchSize(count=3)
    assert parse_batch(" 25% ") == BatchSize(percent=25.0)
    assert str(parse_batch("25%")) == "25%" and str(parse_batch("7")) == "7"
    for bad, word in (("0", "at least 1"), ("-2", "at least 1"), ("0%", "above 0%"),
                      ("150%", "at most 100%"), ("ten", "not a number"), ("2.5", "not a number"),
                      ("nan%", "percentage")):
        with pytest.raises(OptionError) as e:
            parse_batch(bad)
        assert str(e.value).startswith(f"--batch {bad}:") and word in str(e.value), e.value
        assert "\n" not in str(e.value)


def test_batch_sizes_round_up_and_stay_within_the_role() -> None:
    assert BatchSize(count=3).size(10) == 3
    assert BatchSize(count=50).size(10) == 10
    assert BatchSize(percent=30).size(10) == 3          # not 4 (30% of 10 in floating point)
    assert BatchSize(percent=25).size(10) == 3          # 2.5 rounds up
    assert BatchSize(percent=1).size(10) == 1           # never 0
    assert BatchSize(percent=100).size(300) == 300
    assert BatchSize(percent=10).size(300) == 30
    assert BatchSize(count=3).size(0) == 0


def test_split_in_order_and_the_together_roles_whole() -> None:
    assert split(HOSTS, BatchSize(count=4)) == [HOSTS[:4], HOSTS[4:8], HOSTS[8:]]
    assert split(HOSTS, BatchSize(percent=50)) == [HOSTS[:5], HOSTS[5:]]
    assert split(HOSTS, None) == [HOSTS]
    assert split(HOSTS, BatchSize(count=1), role="etcd") == [HOSTS]   # members start together
    assert split([], BatchSize(count=2)) == []
    assert sum(split(HOSTS, BatchSize(count=3)), []) == HOSTS


def test_max_fail_values_and_budget() -> None:
    assert parse_max_fail("20%") == 20.0 and parse_max_fail("0") == 0.0
    assert parse_max_fail("100%") == 100.0
    for bad in ("150%", "-1%", "x", "101"):
        with pytest.raises(OptionError) as e:
            parse_max_fail(bad)
        assert str(e.value).startswith(f"--max-fail {bad}:")
    # more than P % stops: 2 of 10 is exactly 20 %, not more
    assert not over_budget(2, 10, 20.0)
    assert over_budget(3, 10, 20.0)
    assert over_budget(1, 10, 0.0) and not over_budget(0, 10, 0.0)
    assert not over_budget(10, 10, 100.0)
    assert not over_budget(5, 10, None)                  # no budget: only the quorum policy
    assert over_budget(1, 3, 33.0) and not over_budget(1, 3, 34.0)


def test_count_and_seconds_values() -> None:
    assert parse_count("--parallel", "50", 1, 1000) == 50
    assert parse_seconds("--host-timeout", "30", 1, 86400) == 30.0
    assert parse_seconds("--host-timeout", "2.5s", 1, 86400) == 2.5
    for bad in ("0", "1001", "x", "4.5"):
        with pytest.raises(OptionError, match=r"^--parallel "):
            parse_count("--parallel", bad, 1, 1000)
    for bad in ("0", "x", "inf", "-3"):
        with pytest.raises(OptionError, match=r"^--host-timeout "):
            parse_seconds("--host-timeout", bad, 1, 86400)


@pytest.mark.parametrize("args,option", [
    (["--batch", "0"], "--batch 0"), (["--max-fail", "150%"], "--max-fail 150%"),
    (["--parallel", "0"], "--parallel 0"), (["--host-timeout", "never"], "--host-timeout never"),
    (["--batch", "abc%"], "--batch abc%"),
])
def test_bad_option_is_one_line_naming_it(args: list[str], option: str) -> None:
    r = CliRunner().invoke(app, ["deploy", "inventories/lab.yaml", "--yes", *args])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}:"), r.output
    assert "Traceback" not in r.output


def test_plan_takes_parallel_and_host_timeout() -> None:
    r = CliRunner().invoke(app, ["plan", "inventories/lab.yaml", "--parallel", "5000"])
    assert r.exit_code == 2 and "error: --parallel 5000:" in r.output, r.output
    r = CliRunner().invoke(app, ["plan", "--help"])
    assert "--host-timeout" in r.output and "--batch" not in r.output


SPEC = """\
name: batchy
providers: [{name: p1, kind: owned}, {name: p2, kind: rented}, {name: p3, kind: cloud}]
sites:
  - {name: a, provider: p1}
  - {name: b, provider: p2}
  - {name: c, provider: p3}
servers:
  - {name: "a[1:4]", site: a, address: "192.0.2.[10:13]"}
  - {name: "b[1:3]", site: b, address: "192.0.2.[20:22]"}
  - {name: "c[1:3]", site: c, address: "192.0.2.[30:32]"}
"""


@pytest.fixture
def fake_phases(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """run_deploy with its SSH parts replaced: connect_first finds `down` unreachable; each
    phase records its hosts and fails those in `fail` (per role)."""
    calls: dict[str, Any] = {"phases": [], "fail": {}, "down": set()}

    def connect_first(ctx: Any, servers: list[Any], ssh: Any, ssh_data: Any, conns: Any,
                      opts: Any, report: Any) -> set[str]:
        for name in calls["down"]:
            res = report.result(name, "base")
            res.status, res.error = "unreachable", "cannot connect over SSH: no answer"
        return set(calls["down"])

    def run_phase(ctx: Any, role: str, step: Any, hosts: list[str], report: Any,
                  ssh_data: Any, conns: Any, opts: Any, label: str = "") -> set[str]:
        calls["phases"].append((role, list(hosts)))
        bad = {h for h in hosts if h in calls["fail"].get(role, set())}
        for h in hosts:
            res = report.result(h, role)
            res.status = "failed" if h in bad else "ok"
            res.error = "boom" if h in bad else ""
        return bad

    monkeypatch.setattr(driver, "patch_gevent", lambda: None)
    monkeypatch.setattr(driver, "connect_first", connect_first)
    monkeypatch.setattr(driver, "run_phase", run_phase)
    monkeypatch.setattr(driver, "pyinfra_data", lambda *a, **k: {})
    return calls


def deploy(tmp_path: Path, **kwargs: Any) -> Any:
    path = tmp_path / "batchy.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    return driver.run_deploy(spec, path, roles=["base", "mesh"], ssh=SSHSettings(),
                             secrets_path=tmp_path / "s.enc", secrets_key=Fernet.generate_key(),
                             assets_dir=tmp_path, **kwargs)


def test_each_role_a_batch_at_a_time(tmp_path: Path, fake_phases: dict[str, Any]) -> None:
    report = deploy(tmp_path, batch=BatchSize(count=4))
    names = [f"{s}{i}" for s, n in (("a", 4), ("b", 3), ("c", 3)) for i in range(1, n + 1)]
    assert fake_phases["phases"] == [
        ("base", names[:4]), ("base", names[4:8]), ("base", names[8:]),
        ("mesh", names[:4]), ("mesh", names[4:8]), ("mesh", names[8:])]
    doc = report.to_doc()
    assert doc["ok"] and doc["batch"] == "4"
    assert [(b["role"], b["batch"], b["of"], len(b["hosts"])) for b in doc["batches"]] == [
        ("base", 1, 3, 4), ("base", 2, 3, 4), ("base", 3, 3, 2),
        ("mesh", 1, 3, 4), ("mesh", 2, 3, 4), ("mesh", 3, 3, 2)]
    assert set(doc["role_seconds"]) == {"base", "mesh"}
    assert {h["status"] for h in doc["host_status"]} == {"ok"}


def test_a_batch_over_the_budget_stops_the_deploy(tmp_path: Path,
                                                   fake_phases: dict[str, Any]) -> None:
    fake_phases["fail"] = {"base": {"b1", "b2"}}          # both in batch 2 (b1, b2, b3, c1)
    report = deploy(tmp_path, batch=BatchSize(count=4), max_fail=25.0)
    doc = report.to_doc()
    assert not doc["ok"]
    assert doc["stopped"].startswith("stopped after base batch 2/3: 2 of 4 server(s) failed "
                                     "(50% > --max-fail 25%): b1, b2"), doc["stopped"]
    assert [b["stopped"] for b in doc["batches"]] == [False, True]
    assert doc["batches"][1]["failed"] == ["b1", "b2"]
    assert fake_phases["phases"][-1][0] == "base" and len(fake_phases["phases"]) == 2
    status = {(r["host"], r["role"]): r["status"] for r in doc["results"]}
    assert status[("c2", "base")] == "skipped" and status[("a1", "mesh")] == "skipped"
    assert status[("b1", "base")] == "failed" and status[("a1", "base")] == "ok"
    assert set(doc["rerun"]) == {f"{s}{i}" for s, n in (("a", 4), ("b", 3), ("c", 3))
                                 for i in range(1, n + 1)}


def test_within_the_budget_the_others_converge(tmp_path: Path,
                                               fake_phases: dict[str, Any]) -> None:
    fake_phases["fail"] = {"base": {"c2"}}
    report = deploy(tmp_path, max_fail=20.0)                # 1 of 10: 10 % of the one batch
    doc = report.to_doc()
    assert doc["stopped"] is None and doc["failed_hosts"] == ["c2"] and not doc["ok"]
    assert ("mesh", [h for h in report.hosts if h != "c2"]) in fake_phases["phases"]
    [c2] = [h for h in doc["host_status"] if h["host"] == "c2"]
    assert c2["status"] == "failed" and c2["reason"] == "base: boom"


def test_unreachable_from_the_start_counts_in_its_first_batch(
        tmp_path: Path, fake_phases: dict[str, Any]) -> None:
    fake_phases["down"] = {"a2"}
    report = deploy(tmp_path, batch=BatchSize(count=5), max_fail=10.0)
    doc = report.to_doc()
    assert doc["batches"][0]["failed"] == ["a2"] and doc["batches"][0]["stopped"]
    assert "a2" not in fake_phases["phases"][0][1]          # never waited for again
    assert doc["stopped"].startswith("stopped after base batch 1/2: 1 of 5")
