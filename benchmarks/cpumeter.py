"""CPU seconds used by groups of processes over a window (the benchmarks' meter).

    meter = CpuMeter(app=app_pid, postgres=postmaster_pid, redis=[pid, pid])
    meter.start(); ...; used = meter.stop()  # {"wall_s": ..., "app": ..., "postgres": ...}

Used by benchmarks/app_hotpaths.py (which re-exports it: `from app_hotpaths import CpuMeter`
keeps working) and benchmarks/locust_bench.py. A group's processes are read by
freehold.deploy.loadtest.cpusample.tree_cpu_s, as a calibration reads the app's.
"""

from __future__ import annotations

import time

from freehold.deploy.loadtest.cpusample import tree_cpu_s


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop(): the app server, the
    PostgreSQL server (postmaster and backends) and Redis. A group is one or more root pids and
    all their descendants.

    By default a process that exits in between is not counted (the app's pools keep their
    backends). With `exited=True` it is: a group's CPU is then its live processes' own CPU plus
    the CPU of the children they reaped (Linux adds a waited-for child's CPU to its parent's
    children_user/children_system), so backends, autovacuum and parallel workers that end
    inside the window count too."""

    def __init__(self, *, exited: bool = False, **roots: int | list[int] | None) -> None:
        self.roots = {k: v if isinstance(v, list) else [v] for k, v in roots.items() if v}
        self.exited = exited
        self._t0 = 0.0
        self._c0: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        return {name: tree_cpu_s(pids, exited=self.exited) for name, pids in self.roots.items()}

    def start(self) -> None:
        self._c0, self._t0 = self._sample(), time.perf_counter()

    def stop(self) -> dict[str, float]:
        c1, wall = self._sample(), time.perf_counter() - self._t0
        if self.exited:  # totals: a process gone since start() moved into its parent's count
            used = {name: sum(got.values()) - sum(self._c0.get(name, {}).values())
                    for name, got in c1.items()}
        else:
            used = {name: sum(v - self._c0.get(name, {}).get(pid, 0.0)
                              for pid, v in got.items())
                    for name, got in c1.items()}
        return {"wall_s": wall, **used}
