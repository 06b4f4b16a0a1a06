"""deploy/provision/factbatch.py: one host of a phase plans first, every other host reads the
facts it asked for in one command. Real pyinfra facts run by a real shell (each fake server is a
folder the commands run in): every host's plan sees exactly what single reads would give."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyinfra import host
from pyinfra.api import Config, Inventory, State
from pyinfra.api.facts import FactBase
from pyinfra.connectors.util import CommandOutput, OutputLine, make_unix_command_for_host
from pyinfra.facts.files import Directory, File, FindFiles, Sha1File

from freehold.deploy.provision.factbatch import FactCache, split_output
from freehold.deploy.provision.pyinfra_fork import facts_read_once, prepare_hosts

pytestmark = pytest.mark.unit


class Lines(FactBase):
    """Output with and without a final newline, and blank lines at its end."""

    def command(self, text: str) -> str:
        return f"printf '{text}'"

    def process(self, output: list[str]) -> list[str]:
        return output


class Fails(FactBase):
    default = list

    def command(self) -> str:
        return "echo partial; exit 3"

    def process(self, output: list[str]) -> list[str]:
        return output


class NoBinary(FactBase):
    def requires_command(self) -> str:
        return "freehold-no-such-binary"

    def command(self) -> str:
        return "freehold-no-such-binary --list"

    @staticmethod
    def default() -> str:
        return "the default"


TEXTS = ["a", "a\\n", "a\\nb", "a\\n\\n", "\\n", "", "a\\n\\nb\\n\\n\\n"]
SEEN: dict[str, list[Any]] = {}


def step(ctx: Any) -> None:
    got = SEEN.setdefault(host.name, [])
    got.append(host.get_fact(File, path="present.txt"))
    got.append(host.get_fact(File, path="missing.txt"))
    got.append(host.get_fact(Directory, path="sub"))
    got.append(host.get_fact(Sha1File, path="present.txt"))
    got.append(sorted(host.get_fact(FindFiles, path="sub")))
    got.extend(host.get_fact(Lines, text=t) for t in TEXTS)
    got.append(host.get_fact(Fails, _ignore_errors=True))
    got.append(host.get_fact(NoBinary))
    if host.name == "b":                       # a fact the scout never read
        got.append(host.get_fact(File, path="only-b.txt"))


def fleet(tmp_path: Path) -> tuple[State, dict[str, list[str]]]:
    names = ["a", "b", "c"]
    state = State(Inventory((names, {})), Config(PARALLEL=3))
    commands: dict[str, list[str]] = {n: [] for n in names}
    for h in state.inventory:
        root = tmp_path / h.name
        if not root.exists():                  # the same files for both plans
            (root / "sub").mkdir(parents=True)
            (root / "present.txt").write_text(f"server {h.name}\n")
            (root / "sub" / "one").write_text("1")
            (root / "only-b.txt").write_text("b")
        state.activate_host(h)
        h.connected = True

        def run_shell_command(command: Any, print_output: bool = False,
                              print_input: bool = False, _h: Any = h, _root: Path = root,
                              **kwargs: Any) -> tuple[bool, CommandOutput]:
            for name in ("_get_pty", "_timeout", "_stdin", "_success_exit_codes"):
                kwargs.pop(name, None)                 # as pyinfra's SSH connector does
            text = make_unix_command_for_host(state, _h, command, **kwargs).get_raw_value()
            commands[_h.name].append(text)
            done = subprocess.run(["sh", "-c", text], cwd=_root, capture_output=True,
                                  text=True, timeout=20)
            lines = [OutputLine("stdout", x) for x in done.stdout.splitlines()]
            lines += [OutputLine("stderr", x) for x in done.stderr.splitlines()]
            return done.returncode == 0, CommandOutput(lines)

        h.connector.run_shell_command = run_shell_command
    return state, commands


def without_atime(seen: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The plans, less the files' access times (the first read itself may move them)."""
    return {k: [{f: v for f, v in x.items() if f != "atime"} if isinstance(x, dict) else x
                for x in got] for k, got in seen.items()}


def plan(tmp_path: Path, batched: bool) -> tuple[dict[str, list[Any]], dict[str, list[str]],
                                                 FactCache]:
    SEEN.clear()
    state, commands = fleet(tmp_path)
    with facts_read_once(state.inventory) as facts:
        assert prepare_hosts(state, step, None, None,  # type: ignore[arg-type]
                             facts if batched else None) == []
    return {k: list(v) for k, v in SEEN.items()}, commands, facts


def test_every_host_plans_on_what_single_reads_give(tmp_path: Path) -> None:
    single, single_cmds, _ = plan(tmp_path, batched=False)
    batched, batched_cmds, facts = plan(tmp_path, batched=True)
    assert without_atime(batched) == without_atime(single)
    # what the facts said, so the comparison above is not of two empty plans
    a = single["a"]
    assert a[0]["size"] == len("server a\n") and a[1] is None and a[2] is not None
    assert a[4] == ["sub/one"]
    assert a[5:5 + len(TEXTS)] == [["a"], ["a"], ["a", "b"], ["a", ""], [""], None,
                                   ["a", "", "b", "", ""]]
    assert a[-2] == [] and a[-1] == "the default"
    assert single["b"][-1] is not None and single["b"][0]["size"] == len("server b\n")
    # the scout read each fact on its own; the others: one batch, then the failing fact
    # again on its own (not kept), and b its own extra file
    n = len(single_cmds["a"])
    assert len(batched_cmds["a"]) == n == 5 + len(TEXTS) + 2
    assert len(batched_cmds["c"]) == 2 and len(batched_cmds["b"]) == 3
    assert facts.prefetched == {"b": n - 1, "c": n - 1}


def test_markers_split_output_exactly() -> None:
    t = "@@tok"
    lines = ["x", "", f"{t} 0 0", "", f"{t} 1 0", "y", f"{t} 2 1", "z", "", "", f"{t} 3 0"]
    assert split_output(lines, t) == {0: (0, ["x"]), 1: (0, []), 2: (1, ["y"]),
                                      3: (0, ["z", ""])}


def test_a_batch_slower_than_the_host_timeout_falls_back_to_single_reads(tmp_path: Path) -> None:
    """An overloaded server whose one batch command exceeds --host-timeout (each single read
    would not) plans from single reads; a server that hangs on every command still fails."""
    import gevent

    from freehold.deploy.provision.pyinfra_fork import HostTimedOut, bound_commands

    SEEN.clear()
    state, commands = fleet(tmp_path)
    hosts = {h.name: h for h in state.inventory}
    for name, hang_all in (("b", False), ("c", True)):
        inner = hosts[name].connector.run_shell_command

        def slow(command: Any, *args: Any, _inner: Any = inner, _all: bool = hang_all,
                 **kwargs: Any) -> Any:
            text = getattr(command, "get_raw_value", lambda: command)()
            if _all or "@@freehold-fact-" in str(text):
                gevent.sleep(5)
            return _inner(command, *args, **kwargs)

        hosts[name].connector.run_shell_command = slow
    bound_commands(state.inventory, 0.5)
    with facts_read_once(state.inventory) as facts:
        failed = prepare_hosts(state, step, None, None, facts)  # type: ignore[arg-type]
    assert [(h.name, type(e)) for h, e in failed] == [("c", HostTimedOut)]
    assert facts.slow == {"b", "c"}
    assert without_atime({"b": SEEN["b"]})["b"][0]["size"] == len("server b\n")
    assert len(SEEN["b"]) == len(SEEN["a"]) + 1      # b planned in full (and its own file)
