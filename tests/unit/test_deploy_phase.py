"""One deploy phase's machinery (deploy/provision/pyinfra_fork.py, progress.py) on pyinfra's own
State with fake servers: an operation's facts are read once unless its host changed since the
prepare stage; a host whose command gets no answer within --host-timeout is cut off alone;
connections are kept across phases and counted; the progress tracker's arithmetic."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import gevent
import pytest
from pyinfra import host
from pyinfra.api import Config, FunctionCommand, Inventory, State, StringCommand, operation
from pyinfra.connectors.util import CommandOutput

from freehold.deploy.provision.progress import PhaseTracker
from freehold.deploy.provision.pyinfra_fork import (
    Connections,
    bound_commands,
    facts_read_once,
    prepare_hosts,
    run_ops_tolerant,
)

EVALUATED: Counter[tuple[str, str]] = Counter()   # (host, flag): generator runs (= fact reads)
WORLD: dict[str, set[str]] = {}                   # each fake server's flags


def _set(name: str, flag: str) -> None:
    WORLD[name].add(flag)


@operation()
def ensure(flag: str):  # type: ignore[no-untyped-def]
    """Like files.file: reads the server's state (a fact), yields a command when it differs."""
    name = host.name
    EVALUATED[(name, flag)] += 1
    if flag not in WORLD[name]:
        yield FunctionCommand(_set, (name, flag), {})


@operation()
def run(cmd: str):  # type: ignore[no-untyped-def]
    yield StringCommand(cmd)


def three_flags(ctx: Any) -> None:
    for flag in ("one", "two", "three"):
        ensure(name=f"ensure {flag}", flag=flag)


def phase(names: list[str]) -> State:
    inventory = Inventory((names, {}))
    state = State(inventory, Config(PARALLEL=len(names)))
    for h in inventory:
        state.activate_host(h)
    return state


@pytest.mark.parametrize("reuse_plan", [True, False])
def test_facts_read_once_unless_the_host_changed_since(reuse_plan: bool) -> None:
    EVALUATED.clear()
    WORLD.clear()
    WORLD.update({"a": {"one", "two", "three"}, "b": {"one", "three"}})
    state = phase(["a", "b"])
    assert prepare_hosts(state, three_flags, None) == []  # type: ignore[arg-type]
    assert set(EVALUATED.values()) == {1}                 # the plan: every operation once
    errors: dict[str, str] = {}
    run_ops_tolerant(state, errors, reuse_plan=reuse_plan)
    assert errors == {} and WORLD["b"] == {"one", "two", "three"}
    if reuse_plan:
        # a: nothing to change, nothing read again; b: "one" kept its plan, "two" changed
        # (evaluated again at execution), "three" comes after a change on b: evaluated again
        assert EVALUATED == {("a", "one"): 1, ("a", "two"): 1, ("a", "three"): 1,
                             ("b", "one"): 1, ("b", "two"): 2, ("b", "three"): 2}
    else:
        assert set(EVALUATED.values()) == {2}           # pyinfra's own way: read twice
    metas = {h.name: [d.operation_meta for d in state.ops[h].values()] for h in state.inventory}
    assert [m.did_change() for m in metas["a"]] == [False, False, False]
    assert [m.did_change() for m in metas["b"]] == [False, True, False]
    assert all(m.did_succeed() for ms in metas.values() for m in ms)
    assert state.results[state.inventory.get_host("a")].success_ops == 3


def fake_ssh(delay: dict[str, float]) -> Any:
    def make(name: str) -> Any:
        def run_shell_command(command: Any, print_output: bool = False,
                              print_input: bool = False, **kwargs: Any) -> Any:
            gevent.sleep(delay.get(name, 0.0))
            return True, CommandOutput([])
        return run_shell_command
    return make


def test_a_host_that_does_not_answer_is_cut_off_alone() -> None:
    state = phase(["a", "b", "c"])
    make = fake_ssh({"b": 30.0})                           # b hangs (paused)
    for h in state.inventory:
        h.connector.run_shell_command = make(h.name)
    bound_commands(state.inventory, 0.3)

    def step(ctx: Any) -> None:
        run(name="first", cmd="true")
        run(name="second", cmd="true")

    assert prepare_hosts(state, step, None) == []  # type: ignore[arg-type]
    tracker = PhaseTracker("t", ["a", "b", "c"])
    tracker.plan({"a": 2, "b": 2, "c": 2})
    errors: dict[str, str] = {}
    started = time.monotonic()
    run_ops_tolerant(state, errors, tracker)
    assert time.monotonic() - started < 5
    assert list(errors) == ["b"]
    assert errors["b"].startswith("HostTimedOut: no answer within 0.3 s to one command "
                                  "(--host-timeout)"), errors
    assert {h.name for h in state.failed_hosts} == {"b"}
    a = state.inventory.get_host("a")
    assert [d.operation_meta.did_succeed() for d in state.ops[a].values()] == [True, True]
    st = tracker.status
    assert (st.done, st.failed, st.left) == (2, 1, 0)


def test_a_fact_that_gets_no_answer_fails_the_host_not_defaults() -> None:
    from pyinfra.facts.files import File

    state = phase(["a", "b"])
    make = fake_ssh({"a": 30.0})
    for h in state.inventory:
        h.connector.run_shell_command = make(h.name)
        h.connected = True
    bound_commands(state.inventory, 0.2)
    seen = []

    def step(ctx: Any) -> None:
        seen.append((host.name, host.get_fact(File, path="/etc/hostname")))

    failed = prepare_hosts(state, step, None)  # type: ignore[arg-type]
    assert [(h.name, type(e).__name__) for h, e in failed] == [("a", "HostTimedOut")]
    assert seen == [("b", None)]          # a never went on with a default in place of a fact


class FakeTransport:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


class FakeClient:
    def __init__(self) -> None:
        self.transport, self.closed = FakeTransport(), False

    def get_transport(self) -> FakeTransport:
        return self.transport

    def close(self) -> None:
        self.closed, self.transport.active = True, False


def test_connections_kept_across_phases_and_counted() -> None:
    conns = Connections()
    first = phase(["a", "b", "c"])
    first.add_callback_handler(conns.handler())
    clients = {}
    for h in first.inventory:                     # what a connect does, and its callback
        h.connector.client = clients[h.name] = FakeClient()
        h.connected = True
        first.trigger_callbacks("host_connect", h)
    assert conns.opened == 3
    conns.keep(first.inventory, lost={"c"})       # c failed in that phase: closed, not kept
    assert clients["c"].closed and not clients["a"].closed
    assert set(conns.clients) == {"a", "b"}

    clients["b"].transport.active = False         # b's server died between the phases
    second = phase(["a", "b", "c"])
    conns.adopt(second.inventory)
    hosts = {h.name: h for h in second.inventory}
    assert hosts["a"].connected and hosts["a"].connector.client is clients["a"]
    assert not hosts["b"].connected and not hosts["c"].connected
    assert set(conns.clients) == {"a"}
    second.add_callback_handler(conns.handler())
    second.trigger_callbacks("host_connect_error", hosts["b"], "Could not connect (timed out)")
    assert conns.failed_attempts == 1 and conns.key_problem("b") is False
    assert conns.error("b") == "cannot connect over SSH: Could not connect (timed out)"
    conns.close_all()
    assert clients["a"].closed and conns.clients == {}


def test_phase_tracker_counts_and_names_the_slowest() -> None:
    seen = []
    t = PhaseTracker("base", ["a", "b", "c", "d"], view=seen.append, every=0)
    for h in "abcd":
        t.begin(h)
    for h in "abc":
        t.end(h)                                   # facts read
    t.fail("d")                                    # d's facts failed
    t.plan({"a": 2, "b": 0, "c": 1})
    st = t.status
    assert (st.done, st.failed, st.left) == (1, 1, 2)        # b has nothing to run
    assert st.steps_total == 3 + 3
    t.begin("a")
    t.begin("c")
    time.sleep(0.02)
    t.end("c")                                     # c's one operation: done
    t.emit(force=True)
    assert (st.done, st.left, st.slowest) == (2, 1, "a")
    assert "slowest a" in st.counts()
    t.end("a")
    t.begin("a")
    t.end("a", ok=False)                           # a's second operation failed
    final = t.finish(["b", "c"])
    assert (final.done, final.failed, final.left) == (2, 2, 0) and final.finished
    assert seen[-1].finished and "slowest" not in final.counts()
    assert t.seconds["c"] >= 0.02


def test_a_fact_asked_again_while_preparing_is_read_once() -> None:
    from pyinfra.facts.files import File

    state = phase(["a"])
    commands: list[str] = []

    def run_shell_command(command: Any, print_output: bool = False, print_input: bool = False,
                          **kwargs: Any) -> Any:
        commands.append(str(command))
        return True, CommandOutput([])

    [a] = list(state.inventory)
    a.connector.run_shell_command = run_shell_command
    a.connected = True

    def step(ctx: Any) -> None:
        host.get_fact(File, path="/etc/hostname")
        host.get_fact(File, path="/etc/hostname")       # the same: answered from the first
        host.get_fact(File, path="/etc/hosts")          # another path: read

    with facts_read_once(state.inventory):
        assert prepare_hosts(state, step, None) == []  # type: ignore[arg-type]
    assert len(commands) == 2
    a.get_fact(File, path="/etc/hostname")              # after the prepare stage: read afresh
    assert len(commands) == 3


def test_a_dead_server_is_noticed_by_keepalives_and_a_bound_on_unacknowledged_data() -> None:
    """A powered-off server sends no reset: the SSH connection gets keepalives and
    TCP_USER_TIMEOUT, so a command in flight fails in ~30 s instead of --host-timeout."""
    import socket
    from types import SimpleNamespace

    import paramiko

    from freehold.deploy.provision.pyinfra_fork import DEAD_PEER_S, KEEPALIVE_S, notice_dead_peer

    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    transport = paramiko.Transport(sock)   # not started: only its socket and settings matter
    h = SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(
        get_transport=lambda: transport)))
    try:
        assert notice_dead_peer(h)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == DEAD_PEER_S * 1000
        assert transport.packetizer._Packetizer__keepalive_interval == KEEPALIVE_S
        none = SimpleNamespace(connector=SimpleNamespace(client=None))
        assert not notice_dead_peer(none)
    finally:
        transport.close()
        peer.close()
        listener.close()
