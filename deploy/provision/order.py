"""Which roles exist and in which order they are applied.

Adding a role: create `roles/<name>/` (an `__init__.py` with `STEPS`, optional `PORTS` and
`hosts()`), then add its name to `ROLE_ORDER` below, after the roles it needs.

A role whose steps also run on servers that do not carry it (monitoring's exporters on every
server, pgBackRest on the PostgreSQL servers) defines `hosts(spec) -> [server names]`, and
`ports_for(spec, server) -> Ports` for the ports it opens on each of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

# dependency order: each role only needs roles before it
ROLE_ORDER: tuple[str, ...] = (
    "base",
    "mesh",
    "etcd",
    "postgres",
    "pgbouncer",
    "redis",
    "media",
    "lb",
    "app",
    "worker",
    "monitoring",
    "backup",
)


class RoleError(Exception):
    pass


def role_module(name: str) -> ModuleType | None:
    """`roles.<name>` when it exists, else None."""
    try:
        return importlib.import_module(f"roles.{name}")
    except ModuleNotFoundError as e:
        if e.name in (f"roles.{name}", "roles"):
            return None
        raise


def ordered_roles(wanted: Iterable[str] | None = None) -> list[str]:
    """The roles to apply, in dependency order. `wanted` None = every role in the order.
    Unknown names raise RoleError naming the roles there are."""
    if wanted is None:
        return list(ROLE_ORDER)
    wanted = list(dict.fromkeys(wanted))
    unknown = [r for r in wanted if r not in ROLE_ORDER]
    if unknown:
        raise RoleError(f"unknown role(s) {', '.join(unknown)} — deployable roles: "
                        f"{', '.join(ROLE_ORDER)}")
    return [r for r in ROLE_ORDER if r in wanted]


def role_hosts(spec: Any, name: str) -> list[str]:
    """The servers a role's steps run on: its module's `hosts(spec)` when it has one, else the
    servers carrying the role."""
    pick = getattr(role_module(name), "hosts", None)
    if pick is None:
        return [s.name for s in spec.servers_with_role(name)]
    return list(pick(spec))


def role_steps(name: str) -> list[Callable[..., Any]]:
    mod = role_module(name)
    if mod is None:
        raise RoleError(f"role {name} is in ROLE_ORDER but roles/{name}/ has no module")
    steps = list(getattr(mod, "STEPS", ()))
    if not steps:
        raise RoleError(f"roles/{name}: STEPS is empty — list the role's @deploy functions")
    return steps
