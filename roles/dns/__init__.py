"""roles/dns: PowerDNS Authoritative (Debian's pdns-server with the bind backend: the zone is a
file) on the spec's dns servers, each serving the same zone rendered from the spec. The
platform's names answer with the virtual IPs of the sites whose health check passes (LUA
records), all of them when none does. With `roles.dns.dnssec` the zone is signed live with the
one key kept in the encrypted secrets, imported on every server (what `pdnsutil secure-zone`
would do, but with the same key everywhere: validators see one key set whichever server they
ask). See docs/dns.md."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import server

from freehold.roles.common import (
    config_file,
    directory,
    ensure_packages,
    render,
    service,
    templates_of,
    this_server,
)
from freehold.roles.dns.config import (
    DNSSEC_DB,
    DNSSEC_DIR,
    KEY_FILE,
    KEY_MARKER,
    NAMED_CONF,
    PDNS_CONFIG,
    SECRET,
    ZONE_DIR,
    dnssec,
    named_vars,
    pdns_vars,
    private_key_file,
    zone,
    zone_file,
    zone_text,
)
from freehold.roles.dns.facts import FileText
from freehold.roles.ports import DNS_PORT, Ports
from freehold.roles.registry import Role

PORTS = Ports(public_tcp=(DNS_PORT,), public_udp=(DNS_PORT,))
# dig: `freehold status` asks each server's PowerDNS as the world does (deploy/ops/probes.py)
PACKAGES = ["pdns-server", "pdns-backend-bind", "bind9-dnsutils"]
_t = templates_of(__file__)


def packages(ctx) -> list[str]:
    return list(PACKAGES)


def import_key_command(name: str) -> str:
    """Shell: import the secrets' key as the zone's only key, active (any other key removed);
    then record which key was imported."""
    return (f"set -e; pdnsutil disable-dnssec {name} >/dev/null 2>&1 || true; "
            f"pdnsutil import-zone-key {name} {KEY_FILE} ksk active >/dev/null; "
            f"pdnsutil check-zone {name} >/dev/null; "
            f"sha256sum {KEY_FILE} | cut -d' ' -f1 > {KEY_MARKER}")


@deploy("dns: PowerDNS authoritative")
def configure(ctx) -> None:
    me = this_server(ctx)
    spec = ctx.spec
    name = zone(spec)
    ensure_packages(packages(ctx), "dns")
    directory(ZONE_DIR)
    zfile = config_file(zone_file(spec), zone_text(spec))
    named = config_file(NAMED_CONF, render(_t("named.conf.j2"), **named_vars(spec)))
    conf = config_file(PDNS_CONFIG, render(_t("pdns.conf.j2"), **pdns_vars(spec, me)),
                       mode="640", group="pdns")
    if dnssec(spec):
        directory(DNSSEC_DIR, user="pdns", group="pdns", mode="750")
    if dnssec(spec) and not host.get_fact(File, path=DNSSEC_DB):
        # before anything reads the config: the bind backend refuses a key store not there
        server.shell(name="DNSSEC: create the key store",
                     commands=[f"pdnsutil create-bind-db {DNSSEC_DB}",
                               f"chown pdns:pdns {DNSSEC_DB}"])
    server.shell(name=f"Check the zone {name}", commands=[f"pdnsutil check-zone {name}"],
                 _if=[zfile.did_change, named.did_change, conf.did_change])

    imported = host.get_fact(FileText, path=KEY_MARKER)
    if dnssec(spec):
        text = private_key_file(ctx.secrets.cluster[SECRET])
        config_file(KEY_FILE, text, mode="600")
        if imported != hashlib.sha256(text.encode()).hexdigest():
            server.shell(name=f"DNSSEC: sign {name} with the secrets' key",
                         commands=[import_key_command(name)])
    elif imported:
        server.shell(name=f"DNSSEC: stop signing {name}",
                     commands=[f"pdnsutil disable-dnssec {name} >/dev/null 2>&1 || true; "
                               f"rm -f {KEY_MARKER} {KEY_FILE}"])

    restart = conf.will_change or named.will_change
    service("pdns", restart=restart)
    # a changed zone file: reloaded in place (health-check state and other zones kept)
    server.shell(name=f"Reload the zone {name}",
                 commands=[f"pdns_control bind-reload-now {name}",
                           f"pdns_control purge '{name}$' >/dev/null"],
                 _if=[zfile.did_change])


ROLE = Role("dns", steps=(configure,), ports=PORTS, units=("pdns.service",),
            packages=packages)
