"""What a deploy did, per host and role: operations changed / unchanged / failed, the host's
status, a one-line reason and its seconds; per role and per batch; the SSH connections opened;
the whole run's report, its rerun list and its JSON document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostRoleResult:
    host: str
    role: str
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    status: str = "ok"          # ok | changed | failed | unreachable | skipped
    error: str = ""
    changes: list[str] = field(default_factory=list)
    seconds: float = 0.0        # this host's own work for the role (connect, facts, operations)

    def to_doc(self) -> dict[str, Any]:
        return {"host": self.host, "role": self.role, "status": self.status,
                "changed": self.changed, "unchanged": self.unchanged, "failed": self.failed,
                "seconds": round(self.seconds, 2), "error": self.error, "changes": self.changes}


@dataclass
class BatchResult:
    """One batch of a role's servers: which, which failed, how long, whether it stopped the
    deploy (more than --max-fail of it failed)."""

    role: str
    index: int
    of: int
    hosts: list[str]
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {"role": self.role, "batch": self.index, "of": self.of, "hosts": self.hosts,
                "failed": self.failed, "seconds": round(self.seconds, 1),
                "stopped": self.stopped}


RANK = {"unreachable": 4, "failed": 3, "changed": 2, "ok": 1, "skipped": 0}


@dataclass
class DeployReport:
    spec: str
    dry_run: bool
    roles: list[str]
    hosts: list[str]
    results: list[HostRoleResult] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0
    batch: str | None = None
    max_fail: float | None = None
    batches: list[BatchResult] = field(default_factory=list)
    role_seconds: dict[str, float] = field(default_factory=dict)
    role_cpu_seconds: dict[str, float] = field(default_factory=dict)   # the controller's
    ssh_connections: int = 0
    ssh_connect_failures: int = 0

    _index: dict[tuple[str, str], HostRoleResult] = field(default_factory=dict, repr=False)

    def result(self, host: str, role: str) -> HostRoleResult:
        r = self._index.get((host, role))
        if r is None:
            r = HostRoleResult(host, role)
            self.results.append(r)
            self._index[(host, role)] = r
        return r

    @property
    def failed_hosts(self) -> list[str]:
        bad = {r.host for r in self.results if r.status in ("failed", "unreachable")}
        return [h for h in self.hosts if h in bad]

    @property
    def skipped_hosts(self) -> list[str]:
        return [h for h in self.hosts if any(r.host == h and r.status == "skipped"
                                             for r in self.results)]

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.failed_hosts and self.stopped is None

    def rerun_hosts(self) -> list[str]:
        bad = set(self.failed_hosts) | set(self.skipped_hosts)
        return [h for h in self.hosts if h in bad]

    def host_summary(self) -> list[dict[str, Any]]:
        """Per host: its worst status over the roles, the first failure's one-line reason, the
        operations it changed and its seconds."""
        by_host: dict[str, list[HostRoleResult]] = {}
        for r in self.results:
            by_host.setdefault(r.host, []).append(r)
        out = []
        for h in self.hosts:
            mine = by_host.get(h, [])
            worst = max(mine, key=lambda r: RANK.get(r.status, 0), default=None)
            bad = [r for r in mine if r.status in ("failed", "unreachable")]
            out.append({"host": h, "status": worst.status if worst else "ok",
                        "reason": f"{bad[0].role}: {bad[0].error}" if bad else "",
                        "changed": sum(r.changed for r in mine),
                        "seconds": round(sum(r.seconds for r in mine), 2)})
        return out

    def to_doc(self) -> dict[str, Any]:
        return {"spec": self.spec, "dry_run": self.dry_run, "ok": self.ok,
                "seconds": round(self.seconds, 1), "roles": self.roles, "hosts": self.hosts,
                "changed": self.changed, "failed_hosts": self.failed_hosts,
                "rerun": self.rerun_hosts(), "stopped": self.stopped,
                "ssh_connections": self.ssh_connections,
                "ssh_connect_failures": self.ssh_connect_failures,
                "batch": self.batch, "max_fail": self.max_fail,
                "role_seconds": {r: round(s, 1) for r, s in self.role_seconds.items()},
                "role_cpu_seconds": {r: round(s, 2) for r, s in self.role_cpu_seconds.items()},
                "batches": [b.to_doc() for b in self.batches],
                "host_status": self.host_summary(),
                "results": [r.to_doc() for r in self.results]}
