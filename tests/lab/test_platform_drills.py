"""Failover drills on the lab (issue 21), measured as users see them through every site's
virtual IP: a representative set that fits CI's budget (`freehold drill SPEC --all` runs every
scenario): the leader's power loss, its whole site's power loss, its site cut off by a
partition, a Redis master's server lost. Each asserts its targets: writes back within 15 s (a
server) or 30 s (a site) on every site still up, no acknowledged post lost, no HTTP 500, never
two writable primaries, protected again afterwards.

Runs on the session's main lab after tests/lab/test_platform.py stood the platform up (file
order), or on another lab that is already up with FREEHOLD_DRILL_LAB_SPEC (development)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from freehold.deploy.drills.report import failed_checks, timeline_png
from freehold.deploy.drills.runner import DrillResult, Session, lab_accounts, run_drill
from freehold.deploy.drills.scenarios import SCENARIOS
from freehold.deploy.drills.watch import LabHosts
from freehold.deploy.provision.up import ca_file_for
from freehold.deploy.spec import ClusterSpec, load_spec
from tests.lab.cli import LAB_SPEC

pytestmark = pytest.mark.timeout(900)  # one drill: its fault, restore and the aftermath


@pytest.fixture(scope="module")
def spec_path() -> Path:
    return Path(os.environ.get("FREEHOLD_DRILL_LAB_SPEC") or LAB_SPEC)


@pytest.fixture(scope="module")
def lab(spec_path: Path, request: pytest.FixtureRequest) -> Any:
    if os.environ.get("FREEHOLD_DRILL_LAB_SPEC"):
        from freehold.deploy.lab import Lab

        lab = Lab.from_spec(spec_path)
        if not lab.is_up():  # named on purpose: a lab that is not there fails, never skips
            pytest.fail(f"FREEHOLD_DRILL_LAB_SPEC={spec_path}: that lab is not up — "
                        f"`freehold up --spec {spec_path}`, or unset the variable",
                        pytrace=False)
        return lab
    return request.getfixturevalue("main_lab")


@pytest.fixture(scope="module")
def spec(spec_path: Path) -> ClusterSpec:
    return load_spec(spec_path)


@pytest.fixture(scope="module")
def session(lab: Any, spec: ClusterSpec) -> Session:
    """The drills' accounts logged in once for the module (log-ins are rate limited)."""
    return Session.open(spec, ca_file_for(spec), lab_accounts())


def drill(name: str, lab: Any, spec: ClusterSpec, session: Session,
          tmp_path: Path) -> DrillResult:
    result = run_drill(SCENARIOS[name], spec, LabHosts(lab), lab, session)
    png = timeline_png(result, tmp_path / f"{name}.png")
    doc = result.to_doc()
    print(f"{name}: worst write outage {doc['worst_write_outage_s']} s, sites "
          f"{[(s['site'], s['write_outage']['seconds']) for s in doc['sites']]}, acked "
          f"{doc['acknowledged_writes']}, statuses {[s['statuses'] for s in doc['sites']]}, "
          f"protection {doc['protection']}, timeline {png}")
    assert result.acked > 20, doc  # writes went on: a drill without traffic proves nothing
    assert result.ok, (failed_checks(result), doc)
    assert result.switched_back is None or result.switched_back["ok"], doc["switched_back"]
    return result


def test_leader_power_loss(lab: Any, spec: ClusterSpec, session: Session,
                           tmp_path: Path) -> None:
    r = drill("leader-kill", lab, spec, session, tmp_path)
    assert r.worst_write_s is not None and r.worst_write_s <= 15


def test_leader_site_power_loss(lab: Any, spec: ClusterSpec, session: Session,
                                tmp_path: Path) -> None:
    r = drill("site-kill", lab, spec, session, tmp_path)
    assert r.worst_write_s is not None and r.worst_write_s <= 30
    assert spec.server(r.leader_after or r.leader_before).site != \
        spec.server(r.leader_before).site


def test_leader_site_partition(lab: Any, spec: ClusterSpec, session: Session,
                               tmp_path: Path) -> None:
    r = drill("site-partition", lab, spec, session, tmp_path)
    assert r.worst_write_s is not None and r.worst_write_s <= 30
    assert not r.two_primaries and not r.lost


def test_redis_master_lost(lab: Any, spec: ClusterSpec, session: Session,
                           tmp_path: Path) -> None:
    r = drill("redis-master-kill", lab, spec, session, tmp_path)
    assert r.worst_write_s is not None and r.worst_write_s <= 15
    assert r.leader_after == r.leader_before
