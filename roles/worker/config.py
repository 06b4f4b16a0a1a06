"""Pure config for the workers: how many of each kind run on a server. Settings under
`roles.worker` in the spec:

    per_server: {fanout: 2, notify: 1, trends: 1, moderation: 1}   # default 1 of each
    servers: {c3: {fanout: 4}}                                      # per-server overrides
"""

from __future__ import annotations

from freehold.deploy.spec import ClusterSpec, Server

KINDS = ("fanout", "notify", "trends", "moderation")


def unit(kind: str) -> str:
    return f"freehold-worker-{kind}"


def counts(spec: ClusterSpec, me: Server) -> dict[str, int]:
    cfg = spec.role_settings("worker")
    base = {k: 1 for k in KINDS}
    for source in (cfg.get("per_server") or {}, (cfg.get("servers") or {}).get(me.name) or {}):
        for kind, n in source.items():
            if kind not in KINDS:
                raise ValueError(f"{spec.path}: roles.worker: unknown worker {kind!r} — "
                                 f"use {', '.join(KINDS)}")
            base[kind] = max(0, int(n))
    return base


def instances(spec: ClusterSpec, me: Server) -> dict[str, list[str]]:
    """{kind: [unit instance names]} wanted on `me`."""
    return {k: [f"{unit(k)}@{i}" for i in range(1, n + 1)]
            for k, n in counts(spec, me).items()}
