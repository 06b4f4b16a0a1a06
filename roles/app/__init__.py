"""roles/app: this repository's app as a versioned release under systemd (`freehold-app`, one
uvicorn worker per core on the mesh address), its environment from the spec and the secrets,
migrations run once per deploy before the new release serves, and rolling restarts.

A new release (or a changed unit/environment) reaches the servers one at a time: on each,
`freehold-release roll` drains the server in every HAProxy (runtime API), waits for its sessions
to end, switches `current`, restarts, waits for /readyz and puts it back in service. When a
server's check fails, the previous release is put back there and the roll-out stops (the
servers after it are left on the release they run).
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import deploy
from pyinfra.context import ctx_state
from pyinfra.operations import server, systemd

from freehold.roles.app.config import (
    APP_UNIT,
    ENV_FILE,
    HOME,
    MIGRATE_UNIT,
    RELEASES,
    USER,
    app_port,
    roll_command,
    unit_vars,
)
from freehold.roles.app.install import environment, install_release, unit_release
from freehold.roles.common import config_file, render, service, template_path, this_server
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PORTS = Ports(mesh_tcp=(8000,))

# roll-out bookkeeping of the running deploy: each host's roll operation, in order; a host's
# roll runs only when every earlier one succeeded (pyinfra evaluates `_if` at execution)
_ROLLS: dict[int, list[Any]] = {}


def _earlier_rolls_ok(state_key: int, index: int) -> Any:
    def check() -> bool:
        for meta in _ROLLS.get(state_key, [])[:index]:
            if meta.is_complete() and not meta.did_succeed():
                return False
        return True

    return check


@deploy("app: release and service")
def configure(ctx) -> None:
    me = this_server(ctx)
    release, new = install_release(ctx, "app")
    env = environment(ctx, me)
    unit = config_file(f"/etc/systemd/system/{APP_UNIT}.service",
                       render(template_path(__file__, "freehold-app.service.j2"),
                              **unit_vars(ctx.spec, me)))
    migrate = config_file(f"/etc/systemd/system/{MIGRATE_UNIT}@.service",
                          render(template_path(__file__, "freehold-migrate@.service.j2"),
                                 user=USER, env_file=ENV_FILE, home=HOME, releases=RELEASES))
    if unit.will_change or migrate.will_change:
        systemd.daemon_reload(name="systemd daemon-reload")
    if new:
        # once per deploy, on the first app server, before any server runs the release
        server.shell(name=f"Migrate the database ({release.id})",
                     commands=[f"systemctl start {MIGRATE_UNIT}@{release.id}.service"],
                     _run_once=True, _timeout=600)
    running = unit_release(APP_UNIT)
    if running != release.id or unit.will_change or env.will_change:
        state_key = id(ctx_state.get())
        rolls = _ROLLS.setdefault(state_key, [])
        meta = server.shell(name="Roll the app to the release (drain, restart, check)",
                            commands=[roll_command(ctx.spec, me, release.id)],
                            _serial=True, _timeout=600,
                            _if=_earlier_rolls_ok(state_key, len(rolls)))
        rolls.append(meta)
    service(APP_UNIT, enabled=True)


ROLE = Role("app", steps=(configure,), ports=PORTS, units=("freehold-app*.service",))
__all__ = ["PORTS", "STEPS", "app_port"]
