"""Helpers every role uses: Jinja2 rendering, config files, packages, services, ports.

Roles render their templates with `render()` (Jinja2, StrictUndefined) and upload the text with
`config_file()`, so unit tests check exactly what lands on the servers. Every helper is
idempotent: a second deploy yields no commands.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import jinja2
from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import apt, files, server, systemd

POLICY_RC_D = "/usr/sbin/policy-rc.d"


# ---- templates ------------------------------------------------------------------------

def render(template: str | Path, **data: Any) -> str:
    """Render a Jinja2 template file with StrictUndefined (a missing variable is an error)."""
    path = Path(template)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return env.get_template(path.name).render(**data)


def templates_of(role_file: str) -> Callable[[str], str]:
    """`_t = templates_of(__file__)`, then `_t("haproxy.cfg.j2")`: a role's template paths."""
    return lambda name: str(template_path(role_file, name))


def template_path(role_file: str, name: str) -> Path:
    """`template_path(__file__, "etcd.env.j2")`: a template beside the role's module."""
    return Path(role_file).parent / "templates" / name


# ---- operations -----------------------------------------------------------------------

def config_file(dest: str, text: str, mode: str = "644", user: str = "root",
                group: str = "root", name: str | None = None) -> OperationMeta:
    """Upload `text` to `dest` when its content, owner or mode differ."""
    return files.put(
        name=name or f"Write {dest}",
        src=StringIO(text),
        dest=dest,
        user=user,
        group=group,
        mode=mode,
    )


APT_CONF = "/etc/apt/apt.conf.d/50freehold-deploy"
# A brand-new server may be running its first unattended upgrade (apt waits for the lock rather
# than failing) and its first downloads go through a cold mirror or proxy (retried).
APT_CONF_TEXT = ("// Managed by freehold: wait for a running apt, retry slow first downloads.\n"
                 'DPkg::Lock::Timeout "600";\nAcquire::Retries "5";\n'
                 'Acquire::http::Timeout "120";\n')
# dpkg without an fsync per file: unpacking is several times faster on a loaded disk; a server
# that loses power mid-install is re-run anyway (dpkg --configure -a below)
INSTALL_ARGS = "-o Dpkg::Options::=--force-unsafe-io"


def missing_packages(packages: list[str]) -> list[str]:
    installed = host.get_fact(DebPackages) or {}
    return [p for p in dict.fromkeys(packages) if p not in installed]


def ensure_packages(packages: list[str], role: str) -> bool:
    """Install the packages that are missing in one apt transaction (apt update first,
    services kept stopped while installing so each starts only once configured, an
    interrupted earlier dpkg run finished first). True when something is installed."""
    missing = missing_packages(packages)
    if not missing:
        return False
    config_file(APT_CONF, APT_CONF_TEXT, name=f"{role}: apt waits for its lock, retries")
    server.shell(
        name=f"{role}: hold service starts while installing",
        commands=[f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D}",
                  '[ -z "$(dpkg --audit 2>/dev/null)" ] || dpkg --configure -a'],
    )
    apt.update(name=f"{role}: apt update", cache_time=3600, _retries=2, _retry_delay=10)
    apt.packages(
        name=f"{role}: install {' '.join(missing)}",
        packages=missing,
        no_recommends=True,
        extra_install_args=INSTALL_ARGS,
        _retries=2,
        _retry_delay=10,
    )
    server.shell(name=f"{role}: release service starts", commands=[f"rm -f {POLICY_RC_D}"])
    return True


def role_packages(ctx: Any, server_roles: list[str]) -> list[str]:
    """Every package the roles reaching this server install (each role module's
    `Role.packages(ctx)`), in role order, so the first role installs them in one apt transaction.
    Hooks `before_packages(ctx)` run first (files a package's postinst reads)."""
    from freehold.roles.registry import ROLE_ORDER, role, role_hosts  # the roles import this module

    out: list[str] = []
    for name in ROLE_ORDER:
        if ctx.roles and name not in ctx.roles:
            continue
        if name not in server_roles and host.name not in role_hosts(ctx.spec, name):
            continue
        this = role(name)
        if this.before_packages is not None:
            this.before_packages(ctx)
        out += this.packages(ctx)
    return list(dict.fromkeys(out))


def service(unit: str, restart: bool = False, reload: bool = False,
            daemon_reload: bool = False, running: bool = True, enabled: bool | None = True,
            serial: bool = False) -> OperationMeta:
    """Keep a systemd unit enabled and running; restart/reload when its config changed."""
    return systemd.service(
        name=f"Service {unit}",
        service=unit,
        running=running,
        enabled=enabled,
        restarted=bool(restart and running),
        reloaded=bool(reload and running and not restart),
        daemon_reload=daemon_reload,
        _serial=serial,
    )


def mesh_dropin(unit: str, restart: str = "always") -> OperationMeta:
    """A drop-in starting `unit` after the WireGuard mesh (it binds mesh addresses) and
    restarting it on failure. Returns the file operation (daemon-reload when it changed)."""
    folder = f"/etc/systemd/system/{unit}.service.d"
    files.directory(name=f"{unit} drop-in folder", path=folder)
    text = ("# Managed by freehold: binds mesh addresses, so start after the mesh.\n"
            "[Unit]\nAfter=wg-quick@wg0.service\nWants=wg-quick@wg0.service\n\n"
            f"[Service]\nRestart={restart}\nRestartSec=3\n")
    return config_file(f"{folder}/10-freehold-mesh.conf", text)


def system_user(name: str, home: str, groups: list[str] | None = None) -> OperationMeta:
    """An unprivileged system account with no login shell, owning its home."""
    return server.user(
        name=f"System user {name}",
        user=name,
        system=True,
        home=home,
        shell="/usr/sbin/nologin",
        create_home=True,
        groups=groups,
    )


def directory(path: str, user: str = "root", group: str = "root",
              mode: str = "755") -> OperationMeta:
    return files.directory(name=f"Directory {path}", path=path, user=user, group=group,
                           mode=mode)


def in_container() -> bool:
    """True on a container (the lab's systemd-nspawn servers): no clock, sysctl or kernel
    module control there."""
    from freehold.roles.common.facts import InContainer

    return bool(host.get_fact(InContainer))


def is_running(unit: str) -> bool:
    """Whether a systemd unit runs now (before this deploy's changes)."""
    name = unit if "." in unit else f"{unit}.service"
    return bool((host.get_fact(SystemdStatus, services=[name]) or {}).get(name))


def dir_exists(path: str) -> bool:
    return bool(host.get_fact(Directory, path))


def this_server(ctx: Any) -> Any:
    """The spec's Server for the host being deployed."""
    return ctx.spec.server(host.name)
