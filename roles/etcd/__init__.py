"""roles/etcd: an etcd 3.4 cluster over the mesh (Patroni's DCS); timeouts from the spec's
inter-site latency; runs as the unprivileged `etcd` user of the Debian package."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files

from roles.common import (
    Ports,
    config_file,
    ensure_packages,
    is_running,
    render,
    service,
    template_path,
    this_server,
)
from roles.etcd.config import CLIENT_PORT, PEER_PORT, etcd_env

PORTS = Ports(mesh_tcp=(CLIENT_PORT, PEER_PORT))


@deploy("etcd")
def configure(ctx) -> None:
    srv = this_server(ctx)
    ensure_packages(["etcd-server", "etcd-client"], "etcd")
    env = config_file("/etc/default/etcd",
                      render(template_path(__file__, "etcd.env.j2"), server=srv,
                             env=etcd_env(ctx.spec, srv)))
    files.directory(name="etcd drop-in folder", path="/etc/systemd/system/etcd.service.d")
    unit = config_file("/etc/systemd/system/etcd.service.d/freehold.conf",
                       render(template_path(__file__, "override.conf.j2")))
    files.directory(name="etcd data folder", path="/var/lib/etcd", user="etcd", group="etcd",
                    mode="700")
    # members start together (a new member waits for its peers); restarts go one at a time
    changed = env.will_change or unit.will_change
    service("etcd", restart=changed, daemon_reload=unit.will_change,
            serial=changed and is_running("etcd"))


STEPS = (configure,)
