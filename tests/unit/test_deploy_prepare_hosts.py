"""deploy.provision.pyinfra_fork.prepare_hosts: a phase's deploy code runs for its hosts side
by side (each in a greenlet, as pyinfra's CLI loads a deploy file), each with its own host
context, and a host whose code raises is reported alone."""

from __future__ import annotations

from typing import Any

import gevent
from pyinfra.api import Config, Inventory, State
from pyinfra.context import host as current_host

from freehold.deploy.provision.pyinfra_fork import prepare_hosts


def test_hosts_prepared_side_by_side_and_a_broken_one_reported_alone() -> None:
    inventory = Inventory((["a", "b", "c"], {}))
    state = State(inventory, Config(PARALLEL=3))
    for h in inventory:
        state.activate_host(h)
    live, peak, seen = [0], [0], []

    def step(ctx: Any) -> None:
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        me = current_host.name
        gevent.sleep(0.05)  # a fact's SSH round trip: the other hosts' code runs meanwhile
        seen.append((me, current_host.name))  # still this greenlet's host after the switch
        live[0] -= 1
        if me == "b":
            raise ValueError("broken fact on b")

    failed = prepare_hosts(state, step, None)  # type: ignore[arg-type]
    assert peak[0] == 3  # one after the other, it would be 1
    assert sorted(seen) == [("a", "a"), ("b", "b"), ("c", "c")]
    assert [(h.name, str(e)) for h, e in failed] == [("b", "broken fact on b")]
