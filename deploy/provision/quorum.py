"""When a deploy stops: the servers lost so far must leave every quorum-keeping role intact."""

from __future__ import annotations

from freehold.deploy.spec import ClusterSpec
from freehold.deploy.spec.placement import lost_reasons

QUORUM_ROLES = ("etcd", "postgres", "redis", "media")


def quorum_risks(spec: ClusterSpec, lost: set[str]) -> list[str]:
    """What losing these servers does to the quorum-keeping roles ([] = safe to go on).
    Serving roles (one app server down) never stop a deploy."""
    if not lost:
        return []
    if {s.name for s in spec.servers} <= lost:
        return ["every server failed"]
    return [r for r in lost_reasons(spec, lost) if r.startswith(QUORUM_ROLES)]
