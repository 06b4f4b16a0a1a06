"""The drills name what each fault acted on (scenarios.Ctx.victims): in the drill's JSON
(`victims`), the summary table (`on`) and the HTML page ("acted on"); rolling-restart also
records when each member was restarted (details.restarts). Faults injected on a recording
runner and a fake lab: what they would do is recorded, nothing is run."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.deploy.spec import ClusterSpec, load_spec
from tests.unit.test_drills import FakeHosts

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(REPO / "inventories" / "lab.yaml")


class FakeLab:
    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []

    def kill(self, host: str) -> None:
        self.done.append(("kill", host))

    def stop(self, host: str) -> bool:
        self.done.append(("stop", host))
        return True

    def partition(self, target: str) -> None:
        self.done.append(("partition", target))

    def heal(self, links: bool = True) -> None:
        self.done.append(("heal", str(links)))

    def slow(self, pair: str, delay_ms: float, loss_pct: float = 0.0) -> None:
        self.done.append(("slow", pair))


@pytest.mark.parametrize(("scenario", "victims"), [
    ("leader-kill", ["a1"]),
    ("leader-shutdown", ["a1"]),
    ("site-kill", ["a1", "a2", "a3"]),
    ("site-partition", ["a1", "a2", "a3"]),
    ("blip", ["a1"]),
    ("app-kill", ["a3"]),
    ("sync-standby-kill", ["b1"]),
    ("standby-site-kill", ["b1", "b2", "b3"]),
    ("third-site-kill", ["c1", "c2", "c3"]),
    ("etcd-quorum-loss", ["b1", "c1"]),
    ("worker-kill", ["a3"]),
    ("slow-link", ["link a-b"]),
    ("switchover", ["a1", "b1"]),
    ("rolling-restart", ["b1", "c1", "a1"]),
])
def test_each_drill_names_what_it_acted_on(spec: ClusterSpec, scenario: str,
                                           victims: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from freehold.deploy.drills import scenarios as sc

    monkeypatch.setattr(sc, "BLIP_S", 0.0)
    ctx = sc.Ctx(spec, FakeHosts(), FakeLab(), "a1")
    sc.SCENARIOS[scenario].inject(ctx)
    assert ctx.victims == victims


def test_rolling_restart_records_each_restart(spec: ClusterSpec) -> None:
    from freehold.deploy.drills import scenarios as sc

    hosts = FakeHosts()
    ctx = sc.Ctx(spec, hosts, None, "a1")  # planned: no lab needed
    sc.SCENARIOS["rolling-restart"].inject(ctx)
    restarts = ctx.state["details"]["restarts"]
    assert [(r["member"], r["was"]) for r in restarts] == [
        ("b1", "sync_standby"), ("c1", "replica"), ("a1", "leader")]
    assert all(r["running_after_s"] is not None and r["started"] > 0 for r in restarts)
    # the leader is restarted after its switchover to the synchronous standby
    switch = next(i for i, (_, cmd) in enumerate(hosts.commands) if "switchover" in cmd)
    after = hosts.commands[switch + 1][1]
    assert "a1 --force" in after and "restart" in after


def test_victims_in_the_json_table_and_page(tmp_path: Path) -> None:
    from rich.console import Console

    from freehold.deploy.drills.report import suite_html, summary_table
    from tests.unit.test_drills import result

    r = result(victims=["a1", "b1"])
    assert r.to_doc()["victims"] == ["a1", "b1"]
    out = Console(width=250, record=True)
    out.print(summary_table([r, result(scenario="blip")]))
    text = out.export_text()
    assert "a1, b1" in text and "—" in text
    page = suite_html([r], {}, tmp_path / "index.html", "drills").read_text()
    assert "<td>a1, b1</td>" in page and "acted on: a1, b1" in page
