"""The guards around a PostgreSQL failover: a cluster counts as protected only while a
synchronous standby streams (Patroni promotes nobody else), and a drill's outage is measured
from the kill to the first write after the longest pause."""

from __future__ import annotations

import pytest

from freehold.deploy.provision.drill import outage_end
from freehold.deploy.provision.patroni import protected, summary

pytestmark = pytest.mark.unit


def test_protected_needs_a_streaming_sync_standby() -> None:
    rows = [{"Member": "a1", "Role": "Leader", "State": "running"},
            {"Member": "b1", "Role": "Replica", "State": "streaming"},
            {"Member": "c1", "Role": "Replica", "State": "streaming"}]
    # just after a switchover: replicas stream, none is synchronous yet
    assert not protected(rows)
    rows[1]["Role"] = "Sync Standby"
    rows[1]["State"] = "starting"
    assert not protected(rows)
    rows[1]["State"] = "streaming"
    assert protected(rows)
    assert not protected(rows[1:])  # no leader
    assert summary(rows[:2]) == "a1 Leader running, b1 Sync Standby streaming"


def test_drill_waits_for_the_rest_api_view_of_a_sync_standby() -> None:
    members = [{"name": "a1", "role": "leader", "state": "running"},
               {"name": "b1", "role": "replica", "state": "streaming"}]
    assert not protected(members)
    members[1]["role"] = "sync_standby"
    assert protected(members)


def test_outage_is_the_longest_pause_after_the_kill() -> None:
    assert outage_end(10.0, [9.0, 9.5]) is None
    assert outage_end(10.0, [9.9, 10.1, 10.2, 25.0, 25.1]) == pytest.approx(15.0)
