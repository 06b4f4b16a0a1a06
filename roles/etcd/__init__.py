"""roles/etcd: an etcd 3.4 cluster over the mesh (Patroni's DCS); timeouts from the spec's
inter-site latency; runs as the unprivileged `etcd` user of the Debian package."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.roles.common import (
    config_file,
    ensure_packages,
    is_running,
    render,
    service,
    template_path,
    this_server,
)
from freehold.roles.etcd.config import CLIENT_PORT, PEER_PORT, etcd_env
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PORTS = Ports(mesh_tcp=(CLIENT_PORT, PEER_PORT))
# a first start waits for the other members (their packages may still be unpacking)
FIRST_START_TIMEOUT_S = 300


def packages(ctx) -> list[str]:
    return ["etcd-server", "etcd-client"]


@deploy("etcd")
def configure(ctx) -> None:
    srv = this_server(ctx)
    ensure_packages(packages(ctx), "etcd")
    env = config_file("/etc/default/etcd",
                      render(template_path(__file__, "etcd.env.j2"), server=srv,
                             env=etcd_env(ctx.spec, srv)))
    files.directory(name="etcd drop-in folder", path="/etc/systemd/system/etcd.service.d")
    unit = config_file("/etc/systemd/system/etcd.service.d/freehold.conf",
                       render(template_path(__file__, "override.conf.j2")))
    files.directory(name="etcd data folder", path="/var/lib/etcd", user="etcd", group="etcd",
                    mode="700")
    changed = env.will_change or unit.will_change
    if is_running("etcd"):
        # restarts go one member at a time: the quorum holds throughout
        service("etcd", restart=changed, daemon_reload=unit.will_change, serial=changed)
        return
    # first start: every member at once, without blocking (a Type=notify etcd only reports
    # started once a quorum of members has met), then a bounded wait for the cluster
    server.shell(name="Start etcd on every member together",
                 commands=["systemctl daemon-reload", "systemctl enable --quiet etcd",
                           "systemctl start --no-block etcd"])
    server.shell(name="Wait for the etcd cluster", commands=[wait_healthy_command()])


def wait_healthy_command(timeout_s: int = FIRST_START_TIMEOUT_S) -> str:
    """Shell: poll the local member's health until it serves (a quorum formed), bounded;
    on timeout print the unit's last log lines and fail."""
    return (f"end=$(( $(date +%s) + {timeout_s} )); while [ $(date +%s) -lt $end ]; do "
            f"ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:{CLIENT_PORT} "
            "--dial-timeout=2s --command-timeout=3s endpoint health >/dev/null 2>&1 && exit 0; "
            "sleep 2; done; "
            f"echo 'etcd: no quorum within {timeout_s} s' >&2; "
            "journalctl -u etcd -n 15 --no-pager >&2; exit 1")


ROLE = Role("etcd", steps=(configure,), ports=PORTS, units=("etcd.service",), packages=packages)
