"""The ordered migration runbook and each step's state from the state files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

from freehold.deploy.migrate.state import read_steps, state_dir_for

STEPS: tuple[tuple[str, str], ...] = (
    ("discover", "freehold migrate discover --region R --out M (the manifest)"),
    ("plan", "freehold migrate plan MANIFEST --emit-spec cluster.yaml; fill in servers"),
    ("deploy", "freehold deploy cluster.yaml, then freehold migrate status M --mark deploy=done"),
    ("dns-lower-ttl", "freehold migrate dns --zone Z --lower-ttl (a TTL ahead of cutover)"),
    ("objects", "freehold migrate objects --from s3://BUCKET --to cluster.yaml --manifest M"),
    ("database", "freehold migrate database --from postgresql://... --to cluster.yaml "
                 "--manifest M --watch 3600 (until the first consistent copy)"),
    ("objects-final", "freehold migrate objects ... --final (copies only what changed since)"),
    ("database-cutover", "freehold migrate database ... --cutover (freezes the source; at "
                         "'target ready' point the app at the target; verifies after; "
                         "--rollback undoes)"),
    ("dns-import", "freehold migrate dns --zone Z --import cluster.yaml (MX, TXT, … kept in "
                   "roles.dns.records), then freehold deploy cluster.yaml --roles dns"),
    ("dns-cutover", "freehold migrate dns --zone Z --cutover --address A ..."),
    ("dns-registrar", "freehold dns export cluster.yaml: enter its NS, glue (and DS) at the "
                      "registrar, then freehold migrate status M --mark dns-registrar=done"),
)


def runbook(manifest: Path) -> list[dict[str, Any]]:
    steps = read_steps(state_dir_for(manifest))
    if manifest.exists() and "discover" not in steps:
        steps["discover"] = {"state": "done", "updated": "", "detail": "manifest exists"}
    out = []
    for i, (name, how) in enumerate(STEPS, start=1):
        s = dict(steps.get(name, {}))
        if s.get("state") == "running" and s.get("pid") and not psutil.pid_exists(s["pid"]):
            s["state"], s["note"] = "failed", "process gone: rerun the step to resume"
        detail = {k: v for k, v in s.items() if k not in ("state", "updated", "pid")}
        out.append({"n": i, "step": name, "state": s.get("state", "pending"),
                    "updated": s.get("updated", ""), "how": how,
                    "detail": ", ".join(f"{k}={v}" for k, v in detail.items())})
    return out
