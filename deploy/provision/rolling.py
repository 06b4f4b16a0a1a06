"""Rollback of the app over SSH (Fabric): every app server back to its previous release, one
server at a time, alternating sites, each drained in HAProxy first and put back only once
/readyz answers (the `freehold-release roll` helper roles/app installs does the work on the
server). Worker-only servers then follow the app servers: they switch to the release the app
servers went back to (and restart their workers) unless they already run it, as when the release
rolled back was only ever deployed to the app servers (`freehold deploy --roles app`). A server
that fails stops the roll-back there (the helper has already put that server back on the release
it ran).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.ssh import HostKeyError, SSHSettings, connection
from freehold.roles.app.config import HELPER, keep_releases, roll_command
from freehold.roles.worker.config import KINDS, unit

Progress = Callable[[str], None]


@dataclass
class Step:
    host: str
    role: str
    before: str | None = None
    after: str | None = None
    status: str = "pending"        # ok | failed | skipped | unreachable | refused | pending
    seconds: float = 0.0
    detail: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {"host": self.host, "role": self.role, "before": self.before,
                "after": self.after, "status": self.status, "seconds": round(self.seconds, 1),
                "detail": self.detail}


@dataclass
class RollReport:
    spec: str
    steps: list[Step] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.stopped is None and all(s.status == "ok" for s in self.steps)

    def to_doc(self) -> dict[str, Any]:
        return {"spec": self.spec, "ok": self.ok, "stopped": self.stopped,
                "seconds": round(self.seconds, 1), "steps": [s.to_doc() for s in self.steps]}


def batches(spec: ClusterSpec, role: str = "app") -> list[Server]:
    """Servers with `role`, alternating sites (a1, b1, a2, b2, …): at no point is one site
    left without its servers while another still has all of its own."""
    by_site: dict[str, list[Server]] = {}
    for s in spec.servers_with_role(role):
        by_site.setdefault(s.site, []).append(s)
    out = []
    for i in range(max((len(v) for v in by_site.values()), default=0)):
        for site in by_site.values():
            if i < len(site):
                out.append(site[i])
    return out


def release_status(conn: Any) -> dict[str, Any]:
    out = conn.run(f"{HELPER} status", hide=True, warn=True, timeout=30)
    if not out.ok:
        raise RuntimeError(f"{HELPER} status: {(out.stderr or out.stdout).strip()[-200:]}")
    return dict(json.loads(out.stdout))


def rollback(spec: ClusterSpec, ssh: SSHSettings, progress: Progress | None = None
             ) -> RollReport:
    started = time.monotonic()
    report = RollReport(spec=spec.name)
    app_hosts = batches(spec, "app")
    worker_only = [s for s in batches(spec, "worker") if "app" not in s.roles]
    plan = [(s, "app") for s in app_hosts] + [(s, "worker") for s in worker_only]
    for server, role in plan:
        step = Step(server.name, role)
        report.steps.append(step)
        if report.stopped:
            step.status = "skipped"
            continue
        if progress:
            progress(f"{server.name}: rolling back ({role})")
        t0 = time.monotonic()
        try:
            _rollback_one(spec, server, role, ssh, step,
                          target=app_target(report) if role == "worker" else None)
        except HostKeyError as e:  # refused: the whole line (server, fingerprints, fix)
            step.status, step.detail = "refused", str(e)
        except Exception as e:  # noqa: BLE001 - unreachable server: reported, roll-out stops
            step.status, step.detail = "unreachable", f"{type(e).__name__}: {e}"[-300:]
        step.seconds = time.monotonic() - t0
        if step.status not in ("ok",):
            report.stopped = f"stopped at {server.name}: {step.detail or step.status}"
    report.seconds = time.monotonic() - started
    return report


def app_target(report: RollReport) -> str | None:
    """The release the app servers went back to (the most common one), None without any."""
    done = [st.after for st in report.steps if st.role == "app" and st.status == "ok"
            and st.after]
    return max(set(done), key=done.count) if done else None


def _workers_restart(conn: Any, step: Step) -> bool:
    names = " ".join(f"'{unit(k)}@*'" for k in KINDS)
    out = conn.run(f"systemctl restart {names}", hide=True, warn=True, timeout=120)
    if not out.ok:
        step.detail = (out.stderr or out.stdout).strip()[-300:]
    return bool(out.ok)


def _rollback_one(spec: ClusterSpec, server: Server, role: str, ssh: SSHSettings,
                  step: Step, target: str | None = None) -> None:
    """One server back to its previous release, or (worker-only servers) to `target`."""
    with connection(server, ssh) as conn:
        st = release_status(conn)
        step.before = st.get("current")
        if target and target == step.before:
            step.after, step.status = target, "ok"
            step.detail = "already on the app servers' release"
            return
        if target and target not in st.get("releases", []):
            step.status = "failed"
            step.detail = (f"release {target} (the app servers') is not installed here — run "
                           "`freehold deploy SPEC --roles worker` to install it")
            return
        target = target or st.get("previous")
        if not target:
            step.status, step.detail = "failed", "no previous release on this server"
            return
        if role == "app":
            out = conn.run(roll_command(spec, server, target), hide=True, warn=True,
                           timeout=600)
            if not out.ok:
                step.status = "failed"
                step.detail = (out.stdout + out.stderr).strip().splitlines()[-1:][0][-300:] \
                    if (out.stdout + out.stderr).strip() else f"exit {out.exited}"
                step.after = release_status(conn).get("current")
                return
        else:
            out = conn.run(f"{HELPER} switch {target} --keep {keep_releases(spec)}", hide=True,
                           warn=True, timeout=60)
            if not out.ok:
                step.status, step.detail = "failed", (out.stderr or out.stdout).strip()[-300:]
                return
        if "worker" in server.roles and not _workers_restart(conn, step):
            step.status = "failed"
            return
        step.after = release_status(conn).get("current")
        step.status = "ok" if step.after == target else "failed"
