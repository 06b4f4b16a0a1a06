"""roles/mesh: WireGuard full mesh between every server of the spec (kernel module where
present, wireguard-go otherwise). Every other role talks over the mesh addresses.

Reads: `mesh.network` (default 100.96.0.0/16), `mesh.port` (51820), every server's mesh
address and key. Writes /etc/wireguard/wg0.conf (every other server a peer). A changed peer
list (servers added or removed) is applied by `systemctl reload wg-quick@wg0`, whose
ExecReload is `wg syncconf wg0 <(wg-quick strip wg0)`: peers are added and removed in place and
the tunnels already up keep flowing (tests/lab/test_mesh_scale.py shows no ping lost). The
reload is Freehold's own (files/wg_sync.py, set as the unit's ExecReload): it touches only the
peers that differ, where `wg syncconf` re-set every peer's allowed IPs (wireguard-go removes
them, then adds them back: a packet in between is dropped). Only a
change of implementation (the wireguard-go drop-in) restarts the interface. The mesh network's
route (the interface address's prefix) covers every peer, so wg-quick adds no route per peer
(`Table = off`) and syncconf needs no route change."""

from __future__ import annotations

from pathlib import Path

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
from freehold.roles.mesh.config import (
    PEER_WAIT_S,
    wait_peers_command,
    waited_peers,
    wireguard_vars,
)
from freehold.roles.mesh.facts import KernelWireguard
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PORTS = Ports()  # the WireGuard port itself is opened by base for the cluster's servers only
UNIT = "wg-quick@wg0"
DROPIN_DIR = f"/etc/systemd/system/{UNIT}.service.d"
DROPIN = f"{DROPIN_DIR}/freehold.conf"
SYNC_DROPIN = f"{DROPIN_DIR}/20-freehold-sync.conf"
SYNC_SCRIPT = "/usr/local/lib/freehold/wg_sync.py"
SYNC_UNIT_TEXT = ("# Managed by freehold (roles/mesh): a reload applies only the peers that "
                  "differ\n[Service]\nExecReload=\n"
                  f"ExecReload=/usr/bin/python3 {SYNC_SCRIPT} %i\n")


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
    files.directory(name="wg-quick drop-in folder", path=DROPIN_DIR)
    if kernel:
        server.modprobe(name="WireGuard kernel module", module="wireguard")
        dropin = files.file(name="No userspace WireGuard", path=DROPIN, present=False)
    else:
        dropin = config_file(DROPIN, render(template_path(__file__, "userspace.conf.j2")))
    files.directory(name="freehold helpers folder", path=str(Path(SYNC_SCRIPT).parent))
    files.put(name="Mesh peer sync", src=str(Path(__file__).parent / "files" / "wg_sync.py"),
              dest=SYNC_SCRIPT, mode="755")
    sync = config_file(SYNC_DROPIN, SYNC_UNIT_TEXT)
    conf = config_file("/etc/wireguard/wg0.conf",
                       render(template_path(__file__, "wg0.conf.j2"),
                              **wireguard_vars(ctx.spec, srv, ctx.secrets)), mode="600")
    # peers and keys reload in place (wg syncconf, no tunnel dropped); a new implementation
    # needs a restart
    service(UNIT, restart=dropin.will_change, reload=conf.will_change,
            daemon_reload=dropin.will_change or sync.will_change)
    # the roles after this one dial mesh addresses: when the mesh just came up or changed,
    # wait (bounded, never failing: a peer may be down) until the servers they dial answer
    peers = [p.mesh_address for p in waited_peers(ctx.spec, srv)]
    if peers:
        server.shell(name="Wait for the mesh peers",
                     commands=[wait_peers_command(peers, PEER_WAIT_S)], _if=conf.did_change)


ROLE = Role("mesh",
            steps=(configure,),
            ports=PORTS,
            units=("wg-quick@wg0.service",),
            packages=packages)
