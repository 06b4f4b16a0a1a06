"""Batches and failure budgets, as Ansible's `serial` and `max_fail_percentage`: a role is
applied to N servers (or P % of them) at a time, and the deploy stops when more than P % of a
batch failed. Parsing of the options' values (one-line errors naming the option) and the
arithmetic, with no pyinfra in sight."""

from __future__ import annotations

import math
from dataclasses import dataclass

# roles whose members start together (etcd's first start waits for its peers, Patroni, Redis
# Cluster and SeaweedFS masters form one group): never split; their own steps restart members
# one at a time (`serial`) when their configuration changes
TOGETHER = ("etcd", "postgres", "redis", "media")


class OptionError(ValueError):
    """A bad option value: one line naming the option, the value and what to give instead."""


@dataclass(frozen=True)
class BatchSize:
    """`count` servers at a time, or `percent` % of a role's servers (rounded up, at least 1)."""

    count: int | None = None
    percent: float | None = None

    def size(self, servers: int) -> int:
        if servers <= 0:
            return 0
        if self.count is not None:
            return min(self.count, servers)
        pct = self.percent if self.percent is not None else 100.0
        return max(1, min(servers, math.ceil(servers * pct / 100 - 1e-9)))

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


def _percent(text: str) -> float | None:
    body = text.strip().removesuffix("%").strip()
    try:
        value = float(body)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_batch(text: str) -> BatchSize:
    """`--batch N` (servers, ≥ 1) or `--batch P%` (0 < P ≤ 100)."""
    raw = text.strip()
    hint = "give a number of servers ≥ 1 or a percentage of a role's servers (e.g. 10 or 25%)"
    if raw.endswith("%"):
        pct = _percent(raw)
        if pct is None or not 0 < pct <= 100:
            raise OptionError(f"--batch {text}: a percentage must be above 0% and at most "
                              f"100% — {hint}")
        return BatchSize(percent=pct)
    try:
        count = int(raw)
    except ValueError:
        raise OptionError(f"--batch {text}: not a number — {hint}") from None
    if count < 1:
        raise OptionError(f"--batch {text}: at least 1 server per batch — {hint}")
    return BatchSize(count=count)


def parse_max_fail(text: str) -> float:
    """`--max-fail P%` (0 ≤ P ≤ 100; the % may be left out): the share of a batch that may
    fail before the deploy stops (more than P % stops it; 0% stops at the first failure)."""
    pct = _percent(text)
    if pct is None or not 0 <= pct <= 100:
        raise OptionError(f"--max-fail {text}: give a percentage from 0% to 100% of a batch "
                          "(e.g. 10%; 0% stops at the first failed server)")
    return pct


def parse_count(option: str, text: str, low: int, high: int) -> int:
    """A whole number option within [low, high] (`--parallel`)."""
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise OptionError(f"{option} {text}: give a whole number from {low} to {high}")
    return value


def parse_seconds(option: str, text: str, low: float, high: float) -> float:
    """A duration in seconds within [low, high] (`--host-timeout`)."""
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        raise OptionError(f"{option} {text}: give seconds from {low:g} to {high:g}")
    return value


def split(hosts: list[str], batch: BatchSize | None, role: str = "") -> list[list[str]]:
    """The role's hosts in batches, in order (one batch without --batch, and for the roles
    whose members start together)."""
    if not hosts:
        return []
    if batch is None or role in TOGETHER:
        return [list(hosts)]
    size = batch.size(len(hosts))
    return [hosts[i:i + size] for i in range(0, len(hosts), size)]


def over_budget(failed: int, size: int, max_fail: float | None) -> bool:
    """Whether `failed` of a batch of `size` is more than `max_fail` % (None: no budget)."""
    if max_fail is None or size <= 0 or failed <= 0:
        return False
    return failed * 100 > max_fail * size + 1e-9
