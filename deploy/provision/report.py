"""What a deploy did, per host and role: operations changed / unchanged / failed, the host's
status and error; the whole run's report, its rerun list and its JSON document."""

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

    def to_doc(self) -> dict[str, Any]:
        return {"host": self.host, "role": self.role, "status": self.status,
                "changed": self.changed, "unchanged": self.unchanged, "failed": self.failed,
                "error": self.error, "changes": self.changes}


@dataclass
class DeployReport:
    spec: str
    dry_run: bool
    roles: list[str]
    hosts: list[str]
    results: list[HostRoleResult] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0

    def result(self, host: str, role: str) -> HostRoleResult:
        for r in self.results:
            if r.host == host and r.role == role:
                return r
        r = HostRoleResult(host, role)
        self.results.append(r)
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

    def to_doc(self) -> dict[str, Any]:
        return {"spec": self.spec, "dry_run": self.dry_run, "ok": self.ok,
                "seconds": round(self.seconds, 1), "roles": self.roles, "hosts": self.hosts,
                "changed": self.changed, "failed_hosts": self.failed_hosts,
                "rerun": self.rerun_hosts(), "stopped": self.stopped,
                "results": [r.to_doc() for r in self.results]}
