"""The roles there are, in the order they are applied, and the one shape every role has.

Each `roles/<name>/__init__.py` ends with `ROLE = Role(name=..., steps=(...), ...)`; adding a
role is its folder plus its name in `ROLE_ORDER`. `Role` checks itself when the role module is
imported (a step that is not a function, a name that is not its folder's, ports of the wrong
type), so a mistake fails at import, not halfway through a deploy; `role(name)` checks that the
module exposes one.

A role whose steps also run on servers that do not carry it (monitoring's exporters on every
server, pgBackRest on the PostgreSQL servers) gives `hosts(spec) -> [server names]`, and
`ports_for(spec, server) -> Ports` for the ports it opens on each of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from freehold.roles.ports import Ports

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
    "dns",
)


class RoleError(Exception):
    """A role that does not exist or is not well formed: one line naming it and the fix."""


def _no_packages(ctx: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Role:
    """What a role module gives the deploy, the firewall and the status probes.

    + name: the role's name, its folder under roles/
    + steps: its @deploy functions, applied in order on each of its hosts
    + ports: the ports it opens on the servers carrying it
    + units: the systemd units that run on a server carrying it (`freehold status` checks them)
    + packages: `packages(ctx) -> [Debian package]`, installed in one apt run per server
    + before_packages: `before_packages(ctx)`, files a package's postinst reads
    + hosts: `hosts(spec) -> [server name]` when its steps run beyond the servers carrying it
    + ports_for: `ports_for(spec, server) -> Ports` for the ports it opens on those
    """

    name: str
    steps: tuple[Callable[..., Any], ...]
    ports: Ports = Ports()
    units: tuple[str, ...] = ()
    packages: Callable[[Any], list[str]] = _no_packages
    before_packages: Callable[[Any], None] | None = None
    hosts: Callable[[Any], Iterable[str]] | None = None
    ports_for: Callable[[Any, Any], Ports] | None = None

    def __post_init__(self) -> None:
        where = f"roles/{self.name}: Role"
        if not self.steps or not isinstance(self.steps, tuple):
            raise RoleError(f"{where}.steps: a tuple of the role's @deploy functions, in order")
        for step in self.steps:
            if not callable(step):
                raise RoleError(f"{where}.steps: {step!r} is not a function — list the role's "
                                "@deploy functions")
        if not isinstance(self.ports, Ports):
            raise RoleError(f"{where}.ports: a roles.ports.Ports, not {type(self.ports).__name__}")
        if not isinstance(self.units, tuple) or not all(isinstance(u, str) for u in self.units):
            raise RoleError(f"{where}.units: a tuple of systemd unit names")
        for hook in ("packages", "before_packages", "hosts", "ports_for"):
            value = getattr(self, hook)
            if value is not None and not callable(value):
                raise RoleError(f"{where}.{hook}: a function, not {type(value).__name__}")


def role(name: str) -> Role:
    """The `Role` of `roles/<name>` (a role of ROLE_ORDER). Raises RoleError naming the fix."""
    if name not in ROLE_ORDER:
        raise RoleError(f"unknown role {name} — deployable roles: {', '.join(ROLE_ORDER)}")
    module = importlib.import_module(f"freehold.roles.{name}")
    found = getattr(module, "ROLE", None)
    if not isinstance(found, Role):
        raise RoleError(f"roles/{name}/__init__.py: define ROLE = Role(name={name!r}, ...)")
    if found.name != name:
        raise RoleError(f"roles/{name}/__init__.py: ROLE.name is {found.name!r}, not {name!r}")
    return found


def deployed(name: str) -> Role | None:
    """The `Role` of a role name the spec may use, or None for one no module deploys yet."""
    return role(name) if name in ROLE_ORDER else None


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
    """The servers a role's steps run on: its `hosts(spec)` when it has one, else the servers
    carrying the role."""
    pick = role(name).hosts
    if pick is None:
        return [s.name for s in spec.servers_with_role(name)]
    return list(pick(spec))
