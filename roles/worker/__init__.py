"""roles/worker: the fan-out, notification, trends and moderation workers under systemd
(`freehold-worker-<kind>@<n>`), their count per server from the spec, running the same release
as the app (installed the same way, roles/app/install.py). Workers restart when the release
they run is not the one deployed, or their unit or environment changed; extra instances left
from a larger count are stopped and disabled."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import server, systemd

from freehold.roles.app.config import CURRENT, ENV_FILE, HELPER, HOME, USER, keep_releases
from freehold.roles.app.install import current_link, environment, install_release, unit_release
from freehold.roles.common import config_file, render, template_path, this_server
from freehold.roles.ports import Ports
from freehold.roles.registry import Role
from freehold.roles.worker.config import KINDS, instances, unit

PORTS = Ports()  # workers listen on nothing: they consume Redis streams


def _present_instances() -> set[str]:
    units = host.get_fact(SystemdStatus, services="freehold-worker-*") or {}
    return {u.removesuffix(".service") for u in units if u.endswith(".service")}


def _all_enabled(names: list[str]) -> bool:
    units = [n if "." in n else f"{n}.service" for n in names]
    enabled = host.get_fact(SystemdEnabled, services=units) or {}
    return all(enabled.get(u) for u in units)


@deploy("worker: release and workers")
def configure(ctx) -> None:
    me = this_server(ctx)
    release, _ = install_release(ctx, "worker")
    env = environment(ctx, me)
    if current_link() != release.id:
        server.shell(name=f"Switch to release {release.id}",
                     commands=[f"{HELPER} switch {release.id} --keep {keep_releases(ctx.spec)}"])
    wanted = instances(ctx.spec, me)
    units = {}
    for kind in KINDS:
        units[kind] = config_file(
            f"/etc/systemd/system/{unit(kind)}@.service",
            render(template_path(__file__, "freehold-worker.service.j2"), server=me, kind=kind,
                   user=USER, env_file=ENV_FILE, home=HOME, current=CURRENT))
    if any(u.will_change for u in units.values()):
        systemd.daemon_reload(name="systemd daemon-reload")
    for kind in KINDS:
        names = wanted[kind]
        if not names:
            continue
        stale = [n for n in names if unit_release(n) != release.id]
        if units[kind].will_change or env.will_change:
            stale = names
        if stale:
            server.shell(name=f"Restart {kind} workers on {release.id}",
                         commands=[f"systemctl restart {' '.join(stale)}"])
        if not _all_enabled(names):
            server.shell(name=f"Enable {kind} workers",
                         commands=[f"systemctl enable --quiet {' '.join(names)}"])
    extra = sorted(_present_instances() - {n for ns in wanted.values() for n in ns})
    if extra:
        server.shell(name=f"Stop extra workers {' '.join(extra)}",
                     commands=[f"systemctl disable --now {' '.join(extra)}"])


ROLE = Role("worker", steps=(configure,), ports=PORTS, units=("freehold-worker*.service",))
