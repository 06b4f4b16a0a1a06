"""A deploy's progress as the operator sees it: pyinfra's per-operation callbacks counted into
(description, done, total), and its warnings and errors collected per host instead of printed."""

from __future__ import annotations

import logging
from collections.abc import Callable
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
