"""roles/base: admin users, sshd hardening, nftables default-deny, chrony, sysctl, unattended
security upgrades, journald limits. Applied to every server."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files, server

from freehold.roles.base.config import admins, firewall_vars, sysctl_values
from freehold.roles.common import (
    config_file,
    ensure_packages,
    in_container,
    render,
    role_packages,
    service,
    templates_of,
    this_server,
)
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PACKAGES = ["netbase", "nftables", "chrony", "unattended-upgrades", "sudo", "curl",
            "ca-certificates", "python3"]
PORTS = Ports(public_tcp=(22,))


def packages(ctx) -> list[str]:
    return PACKAGES


_t = templates_of(__file__)


@deploy("base")
def configure(ctx) -> None:
    srv = this_server(ctx)
    # every role's packages for this server in one apt transaction: far faster on a bare
    # server than one per role (downloads overlap, triggers and byte-compiling run once)
    ensure_packages(role_packages(ctx, srv.roles), "base")
    container = in_container()

    # admin accounts: keys only, passwordless sudo through one group
    people = admins(ctx.spec)
    if people:
        server.group(name="Admin group", group="freehold-admins")
        for person in people:
            server.user(name=f"Admin {person['name']}", user=person["name"], shell="/bin/bash",
                        groups=["freehold-admins"], append=True, create_home=True,
                        public_keys=person["ssh_keys"], delete_keys=True)
        config_file("/etc/sudoers.d/freehold-admins", render(_t("sudoers.j2")), mode="440")

    # sshd: validate before reloading so a bad file never locks anyone out
    sshd = config_file("/etc/ssh/sshd_config.d/10-freehold.conf", render(_t("sshd.conf.j2")))
    server.shell(name="Check sshd config", commands=["sshd -t"], _if=sshd.did_change)
    service("ssh", reload=sshd.will_change)

    # firewall
    nft = config_file("/etc/nftables.conf", render(_t("nftables.conf.j2"),
                                                   **firewall_vars(ctx.spec, srv)), mode="755")
    server.shell(name="Check nftables rules", commands=["nft -c -f /etc/nftables.conf"],
                 _if=nft.did_change)
    service("nftables", reload=nft.will_change)

    # time
    chrony = config_file("/etc/chrony/conf.d/freehold.conf", render(_t("chrony.conf.j2")))
    # a container may not set the clock: chrony's unit skips itself there (host keeps time)
    service("chrony", restart=chrony.will_change, running=not container)

    # kernel settings (a container keeps the host's, except its own network namespace's)
    sysctl = config_file("/etc/sysctl.d/60-freehold.conf",
                         render(_t("sysctl.conf.j2"), values=sysctl_values(srv)))
    server.shell(name="Apply sysctl settings",
                 commands=["sysctl -q -e -p /etc/sysctl.d/60-freehold.conf || true"],
                 _if=sysctl.did_change)

    # unattended security upgrades
    config_file("/etc/apt/apt.conf.d/20auto-upgrades", render(_t("auto-upgrades.j2")))
    config_file("/etc/apt/apt.conf.d/52freehold-unattended", render(_t("unattended-upgrades.j2")))

    # journald limits
    files.directory(name="journald drop-in folder", path="/etc/systemd/journald.conf.d")
    journald = config_file("/etc/systemd/journald.conf.d/60-freehold.conf",
                           render(_t("journald.conf.j2")))
    service("systemd-journald", restart=journald.will_change, enabled=None)


ROLE = Role("base",
            steps=(configure,),
            ports=PORTS,
            units=("nftables.service", "ssh.service"),
            packages=packages)
