"""roles/mesh: WireGuard full mesh between every server of the spec (kernel module where
present, wireguard-go otherwise). Every other role talks over the mesh addresses."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.roles.common import (
    config_file,
    ensure_packages,
    render,
    service,
    template_path,
    this_server,
)
from freehold.roles.mesh.config import wireguard_vars
from freehold.roles.mesh.facts import KernelWireguard
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PORTS = Ports()  # the WireGuard port itself is opened by base for the cluster's servers only
UNIT = "wg-quick@wg0"
DROPIN = f"/etc/systemd/system/{UNIT}.service.d/freehold.conf"
PEER_WAIT_S = 60


def kernel_wireguard() -> bool:
    return bool(host.get_fact(KernelWireguard))


def packages(ctx) -> list[str]:
    return ["wireguard-tools", "iproute2", "iputils-ping"] + (
        [] if kernel_wireguard() else ["wireguard-go"])


@deploy("mesh")
def configure(ctx) -> None:
    srv = this_server(ctx)
    kernel = kernel_wireguard()
    ensure_packages(packages(ctx), "mesh")
    if kernel:
        server.modprobe(name="WireGuard kernel module", module="wireguard")
        dropin = files.file(name="No userspace WireGuard", path=DROPIN, present=False)
    else:
        files.directory(name="wg-quick drop-in folder",
                        path=f"/etc/systemd/system/{UNIT}.service.d")
        dropin = config_file(DROPIN, render(template_path(__file__, "userspace.conf.j2")))
    conf = config_file("/etc/wireguard/wg0.conf",
                       render(template_path(__file__, "wg0.conf.j2"),
                              **wireguard_vars(ctx.spec, srv, ctx.secrets)), mode="600")
    # peers and keys reload in place (wg syncconf); a new implementation needs a restart
    service(UNIT, restart=dropin.will_change, reload=conf.will_change,
            daemon_reload=dropin.will_change)
    # the roles after this one bind and dial mesh addresses: when the mesh just came up or
    # changed, wait (bounded, never failing: a peer may be down) until the peers answer
    peers = " ".join(p.mesh_address for p in ctx.spec.servers if p.name != srv.name)
    server.shell(name="Wait for the mesh peers", commands=[wait_peers_command(peers)],
                 _if=conf.did_change)


def wait_peers_command(peers: str, timeout_s: int = PEER_WAIT_S) -> str:
    return (f"end=$(( $(date +%s) + {timeout_s} )); while [ $(date +%s) -lt $end ]; do "
            f"left=''; for p in {peers}; do ping -c1 -W1 -q $p >/dev/null 2>&1 || "
            "left=\"$left $p\"; done; [ -z \"$left\" ] && exit 0; sleep 1; done; "
            "echo \"mesh: no answer yet from$left\" >&2; exit 0")


ROLE = Role("mesh",
            steps=(configure,),
            ports=PORTS,
            units=("wg-quick@wg0.service",),
            packages=packages)
