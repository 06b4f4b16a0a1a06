"""A deploy's progress as the operator sees it: pyinfra's per-operation callbacks counted into
(description, done, total), and its warnings and errors collected per host instead of printed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class LogCapture(logging.Handler):
    """Collects pyinfra's warnings and errors (per host prefix) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError, KeyError):  # its args do not fit its format string
            msg = str(record.msg)
        import click

        self.lines.append(click.unstyle(msg).strip())

    def for_host(self, name: str) -> str:
        hits = [line for line in self.lines if f"[{name}]" in line or name in line.split()[:1]]
        return " | ".join(hits[-4:])[-600:]


Progress = Callable[[str, int, int], None]   # (description, done, total)


def progress_handler(report: Progress | None, label: str, totals: dict[str, int]) -> Any:
    from pyinfra.api.state import BaseStateCallback

    class Handler(BaseStateCallback):
        done = 0

        @staticmethod
        def operation_host_success(state: Any, host: Any, op_hash: Any,
                                   retry_count: int = 0) -> None:
            Handler.done += 1
            if report:
                report(label, Handler.done, totals["ops"])

        @staticmethod
        def operation_host_error(state: Any, host: Any, op_hash: Any, retry_count: int = 0,
                                 max_retries: int = 0) -> None:
            Handler.done += 1
            if report:
                report(label, Handler.done, totals["ops"])

    return Handler()


@dataclass
class PhaseStatus:
    """One phase as the progress bar shows it: hosts done / failed / still running, and the
    slowest host still running (the one whose current step started first)."""

    label: str
    hosts: int
    done: int = 0
    failed: int = 0
    steps_done: int = 0
    steps_total: int = 0
    slowest: str = ""
    slowest_s: float = 0.0
    finished: bool = False
    seconds: float = 0.0

    @property
    def left(self) -> int:
        return self.hosts - self.done - self.failed

    def counts(self) -> str:
        text = f"{self.done} done, {self.failed} failed, {self.left} left"
        if self.slowest and not self.finished:
            text += f" · slowest {self.slowest} ({self.slowest_s:.0f} s)"
        return text


PhaseView = Callable[[PhaseStatus], None]


class PhaseTracker:
    """Counts a phase's hosts through their steps (connect, facts, each operation), times each
    host's own work, and tells the views (throttled to a few updates a second)."""

    def __init__(self, label: str, hosts: list[str], progress: Progress | None = None,
                 view: PhaseView | None = None, every: float = 0.25) -> None:
        self.status = PhaseStatus(label, len(hosts), steps_total=len(hosts))
        self.progress, self.view, self.every = progress, view, every
        self.started = time.monotonic()
        self.running: dict[str, float] = {}     # host -> when its current step started
        self.seconds: dict[str, float] = dict.fromkeys(hosts, 0.0)  # its own work so far
        self.ops: dict[str, int] = {}          # operations left per host (after plan())
        self.finished_hosts: set[str] = set()
        self.planned = False
        self._last = 0.0
        self.emit(force=True)

    def plan(self, ops_per_host: dict[str, int]) -> None:
        """After the facts: how many operations each host has left (a host with none is
        done)."""
        self.planned = True
        self.ops = {h: n for h, n in ops_per_host.items() if h not in self.finished_hosts}
        self.status.steps_total = self.status.steps_done + sum(self.ops.values())
        for h, n in self.ops.items():
            if n == 0:
                self.done(h)
        self.emit()

    def begin(self, host: str) -> None:
        self.running[host] = time.monotonic()
        self.emit()

    def end(self, host: str, ok: bool = True, step: bool = True) -> float:
        """A host's step ended; returns its seconds."""
        t0 = self.running.pop(host, None)
        took = time.monotonic() - t0 if t0 is not None else 0.0
        self.seconds[host] = self.seconds.get(host, 0.0) + took
        if not ok:
            self.fail(host)
        elif step:
            self.status.steps_done += 1
            if self.planned and self.ops.get(host, 0) > 0:
                self.ops[host] -= 1
                if self.ops[host] == 0:
                    self.done(host)
        self.emit()
        return took

    def fail(self, host: str) -> None:
        if host not in self.finished_hosts:
            self.finished_hosts.add(host)
            self.status.failed += 1
            self.status.steps_total -= self.ops.pop(host, 0)
        self.running.pop(host, None)

    def done(self, host: str) -> None:
        if host not in self.finished_hosts:
            self.finished_hosts.add(host)
            self.status.done += 1

    def finish(self, hosts: list[str]) -> PhaseStatus:
        for h in hosts:
            self.done(h)
        self.running.clear()
        self.status.finished = True
        self.status.steps_done = self.status.steps_total
        self.status.seconds = time.monotonic() - self.started
        self.emit(force=True)
        return self.status

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        st = self.status
        if self.running:
            host, since = min(self.running.items(), key=lambda kv: kv[1])
            st.slowest, st.slowest_s = host, now - since
        else:
            st.slowest, st.slowest_s = "", 0.0
        if self.progress:
            self.progress(st.label, st.steps_done, max(1, st.steps_total))
        if self.view:
            self.view(st)
