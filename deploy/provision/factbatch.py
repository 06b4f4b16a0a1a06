"""The facts a role step reads while it plans, read in one SSH command per host.

pyinfra 3 reads each fact with its own command: a no-op of `base` on one server was ~40 round
trips, each an SSH channel, a shell and its children on the server. At 300 servers sharing two
cores, the servers' own CPU for those commands bounds the whole phase.

So a phase plans one host first (the scout), recording every fact its deploy code asks for;
then every other host gets all of those facts in one command (`FactCache.prefetch`), each fact
between markers with its exit code, and its plan is answered from that. A fact the scout did
not read (another path on a host with other roles) is read on its own as before; a fact whose
command failed, or whose output its `process` rejects, is not kept: the ordinary read runs it
again and reports as pyinfra does. While the plan is made nothing changes on the servers, so
one command or many read the same state. Execution reads afresh.

Follows `pyinfra.api.facts._get_fact` (recorded in pyinfra_fork.MIRRORED).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

FactKey = tuple[Any, str, str]


def fact_key(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> FactKey:
    return (cls, repr(args), repr(sorted(kwargs.items())))


@dataclass
class Wanted:
    cls: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class FactCache:
    """Per-host answers of the plan stage, and what the scout asked for."""

    caches: dict[str, dict[FactKey, Any]] = field(default_factory=dict)
    wanted: dict[FactKey, Wanted] = field(default_factory=dict)
    recording: str | None = None           # the scout's name while it plans
    token: str = field(default_factory=lambda: "@@freehold-fact-" + secrets.token_hex(8))
    prefetched: dict[str, int] = field(default_factory=dict)   # host -> facts answered
    slow: set[str] = field(default_factory=set)   # hosts whose batch exceeded --host-timeout

    def lookup(self, h: Any, inner: Any, cls: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
        cache = self.caches.setdefault(h.name, {})
        key = fact_key(cls, args, kwargs)
        if key not in cache:
            if self.recording == h.name:
                self.wanted.setdefault(key, Wanted(cls, args, dict(kwargs)))
            cache[key] = inner(cls, *args, **kwargs)
        return cache[key]

    @contextmanager
    def scouting(self, name: str) -> Iterator[None]:
        self.recording = name
        try:
            yield
        finally:
            self.recording = None

    def prefetch(self, state: Any, h: Any) -> int:
        """Every recorded fact this host has not read yet, in one command. Returns how many
        were answered. Errors reaching the host propagate (HostTimedOut, SSH errors): the host
        would have failed on its first single read the same way."""
        from pyinfra.api.command import StringCommand

        cache = self.caches.setdefault(h.name, {})
        batch = batchable(state, h, [(k, w) for k, w in self.wanted.items() if k not in cache])
        if batch is None or not batch.items:
            return 0
        status, output = h.run_shell_command(StringCommand(batch.script(self.token)),
                                             print_output=False, print_input=False,
                                             **batch.executor)
        if not status:
            return 0
        answered = 0
        for i, (code, lines) in split_output(output.stdout_lines, self.token).items():
            if i >= len(batch.items) or code != 0:
                continue
            key, fact = batch.items[i][0], batch.items[i][1]
            ok, data = processed(fact, lines)
            if ok:
                cache[key] = data
                answered += 1
        self.prefetched[h.name] = answered
        return answered


@dataclass
class Batch:
    items: list[tuple[FactKey, Any, str, str | None]]   # key, fact, command, required binary
    executor: dict[str, Any]

    def script(self, token: str) -> str:
        """One sh script: each fact's command in a subshell (stdin closed, stderr dropped),
        then a marker line with its index and exit code. The marker starts with a newline so
        it is on its own line even after output without a final one (see `split_output`)."""
        from pyinfra.api.facts import _MISSING_COMMAND_MARKER

        parts = []
        for i, (_, _, command, requires) in enumerate(self.items):
            body = f"( {command}\n)"
            if requires:
                body = (f"if command -v {requires} >/dev/null 2>&1; then {body}; "
                        f"else echo '{_MISSING_COMMAND_MARKER}'; fi")
            parts.append(f"{{ {body}; }} </dev/null 2>/dev/null; rc=$?; "
                         f"printf '\\n%s %d %d\\n' '{token}' {i} \"$rc\"")
        return "\n".join(parts) + "\n"


def batchable(state: Any, h: Any, wanted: list[tuple[FactKey, Wanted]]) -> Batch | None:
    """The facts of `wanted` that can share one command on `h`: plain facts (not short
    facts, no shell of their own, preconditions met) whose connector arguments (sudo, su, env,
    timeout...) are all the first one's."""
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
    from pyinfra.api.facts import ShortFactBase, _handle_fact_kwargs, _make_command

    items: list[tuple[FactKey, Any, str, str | None]] = []
    executor: dict[str, Any] | None = None
    for key, w in wanted:
        if issubclass(w.cls, ShortFactBase):
            continue
        fact = w.cls()
        if fact.shell_executable:
            continue
        try:
            if fact.check_preconditions(state, h):
                continue
            fact_kwargs, global_kwargs = _handle_fact_kwargs(state, h, w.cls, list(w.args),
                                                             dict(w.kwargs))
            command = _make_command(fact.command, dict(fact_kwargs))
            requires = _make_command(fact.requires_command, dict(fact_kwargs))
        except Exception:  # noqa: BLE001 - that fact is read on its own, as pyinfra would
            continue
        if command is None:
            continue
        run_with = {k: v for k, v in global_kwargs.items() if k in CONNECTOR_ARGUMENT_KEYS}
        if executor is None:
            executor = run_with
        elif run_with != executor:
            continue
        items.append((key, fact, raw(command), raw(requires) if requires else None))
    return Batch(items, executor or {}) if items else None


def raw(command: Any) -> str:
    getter = getattr(command, "get_raw_value", None)
    return getter() if callable(getter) else str(command)


def split_output(lines: list[str], token: str) -> dict[int, tuple[int, list[str]]]:
    """{index: (exit code, output lines)} from the batch's stdout lines. Each marker follows
    the fact's output and one newline: output that ended with a newline (or was empty) leaves
    one empty line before the marker, dropped here; output without one leaves none. So each
    fact gets exactly the lines a command of its own would have given."""
    pattern = re.compile(rf"^{re.escape(token)} (\d+) (-?\d+)$")
    out: dict[int, tuple[int, list[str]]] = {}
    chunk: list[str] = []
    for line in lines:
        m = pattern.match(line)
        if m is None:
            chunk.append(line)
            continue
        if chunk and chunk[-1] == "":
            chunk.pop()
        out[int(m.group(1))] = (int(m.group(2)), chunk)
        chunk = []
    return out


def processed(fact: Any, lines: list[str]) -> tuple[bool, Any]:
    """What `_get_fact` makes of a successful command's output during the plan stage: its
    default when there is none or the required binary is missing, else `process`; a `process`
    that raises is not kept (the single read reports it)."""
    from pyinfra.api.facts import _MISSING_COMMAND_MARKER

    if lines == [_MISSING_COMMAND_MARKER]:
        return True, fact.default()
    if not lines:
        return True, fact.default()
    try:
        return True, fact.process(lines)
    except Exception:  # noqa: BLE001 - the ordinary read runs it again and reports
        return False, None
