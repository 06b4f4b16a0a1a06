"""Pure config for the DNS servers: PowerDNS Authoritative (Debian 12's pdns-server 4.7, bind
backend: the zone is a file) serving the platform's zone, the same file on every dns server.
Settings under `roles.dns` (deploy/spec/role_settings.py checks them):

    zone: example.social     # the platform's domain (required when a server has the dns role)
    names: ["@", "www"]      # the names answering with the healthy sites' virtual IPs
    ttl: 20                  # TTL of those answers, seconds
    check: readyz            # readyz: GET https://<zone>/readyz through each site's VIP
                             # (200 = up); port: a TCP connection to the VIP's port 443
    check_interval: 5        # seconds between two health checks of a VIP
    dnssec: false            # sign the zone with the key kept in the encrypted secrets
    records: example.records.zone  # other records of the zone (MX, TXT, …), zone-file form,
                             # relative to the spec; `freehold migrate dns --import` writes it

The app serves its web UI, JSON API (/api/v1), Mastodon API and media (/media/) on one host, so
`@` and `www` are all it needs; more names (e.g. api, media) go in `names`.

Why one file rendered on every server rather than a primary with AXFR/NOTIFY secondaries: the
zone is a function of the spec, so every server can compute it; no server is special (a
primary lost with its provider would freeze the zone), no transfer to secure or to lag, and a
deploy that reaches one server already makes it right. The serial is the zone's fingerprint
(`serial()`): the same content gives the same serial on every server, which is what
`freehold status` compares.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.lb.config import vips
from freehold.roles.ports import DNS_PORT, HTTPS_PORT

ZONE_DIR = "/etc/powerdns/freehold"
PDNS_CONFIG = "/etc/powerdns/pdns.conf"
NAMED_CONF = f"{ZONE_DIR}/named.conf"
# the key store: SQLite writes a journal beside it, so its folder is PowerDNS' own
DNSSEC_DIR = "/var/lib/powerdns/freehold"
DNSSEC_DB = f"{DNSSEC_DIR}/bind-dnssec-db.sqlite3"
KEY_FILE = f"{ZONE_DIR}/dnssec.private"
# what `pdnsutil import-zone-key` was last given (sha256 of the key file): the deploy compares
KEY_MARKER = f"{DNSSEC_DIR}/imported-key.sha256"
SECRET = "dnssec_key"        # deploy/secrets.py: base64 of the ECDSA P-256 private scalar

DEFAULT_NAMES = ("@", "www")
DEFAULT_TTL = 20
DEFAULT_CHECK = "readyz"
DEFAULT_INTERVAL = 5
CHECK_TIMEOUT = 2            # seconds a health check may take
NS_TTL = 3600
NEGATIVE_TTL = 60
# PowerDNS' packet cache keeps an answer this long: at most the check interval, so a VIP that
# left the answers is not served from the cache much longer than the check took to notice
CACHE_TTL = 2
DNSSEC_ALGORITHM = 13        # ECDSAP256SHA256
DNSSEC_FLAGS = 257           # one key signs everything (CSK), flagged as key-signing key


class DnsConfigError(ValueError):
    """A spec the dns role cannot serve: one line naming the field and the fix."""


def settings(spec: ClusterSpec) -> dict[str, Any]:
    return spec.role_settings("dns")


def zone(spec: ClusterSpec) -> str:
    name = settings(spec).get("zone")
    if not name:
        raise DnsConfigError(f"{spec.path}: roles.dns.zone is not set — give the platform's "
                             "domain, e.g. `roles: {dns: {zone: example.social}}`")
    return str(name)


def names(spec: ClusterSpec) -> list[str]:
    return list(settings(spec).get("names") or DEFAULT_NAMES)


def ttl(spec: ClusterSpec) -> int:
    return int(settings(spec).get("ttl", DEFAULT_TTL))


def check(spec: ClusterSpec) -> str:
    return str(settings(spec).get("check", DEFAULT_CHECK))


def check_interval(spec: ClusterSpec) -> int:
    return int(settings(spec).get("check_interval", DEFAULT_INTERVAL))


def dnssec(spec: ClusterSpec) -> bool:
    return bool(settings(spec).get("dnssec", False))


def dns_servers(spec: ClusterSpec) -> list[Server]:
    return spec.servers_with_role("dns")


def ns_name(spec: ClusterSpec, server: Server) -> str:
    """The name server's name in the zone: `ns-<server>.<zone>` (what the registrar gets)."""
    return f"ns-{server.name.replace('_', '-')}.{zone(spec)}"


def site_vips(spec: ClusterSpec) -> list[str]:
    """Every serving site's virtual IP, in site order (roles/lb decides them)."""
    found = vips(spec)
    if not found:
        raise DnsConfigError(f"{spec.path}: no site has load balancers, so the dns role has no "
                             "virtual IP to answer with — give 2 servers of a site the lb role")
    return list(found.values())


def lua_text(spec: ClusterSpec) -> str:
    """The LUA A record's code: every healthy VIP (selector all), or every VIP when none looks
    healthy (backupSelector all: a wrong 'all down' must not take the name off the air)."""
    addresses = ", ".join(f"'{a}'" for a in site_vips(spec))
    opts = f"selector='all', backupSelector='all', timeout={CHECK_TIMEOUT}"
    if check(spec) == "port":
        return f"ifportup({HTTPS_PORT}, {{{addresses}}}, {{{opts}}})"
    return f"ifurlup('https://{zone(spec)}/readyz', {{{{{addresses}}}}}, {{{opts}}})"


@dataclass(frozen=True)
class Record:
    name: str      # relative to the zone ('@' = the zone itself)
    ttl: int
    type: str
    content: str


def records(spec: ClusterSpec) -> list[Record]:
    """The zone's records but the SOA, in a fixed order: NS and their addresses (glue), the
    health-checked names, then the records of `roles.dns.records`."""
    servers = dns_servers(spec)
    if not servers:
        raise DnsConfigError(f"{spec.path}: no server has the dns role — give 3 servers in 2 "
                             "providers the role dns")
    origin = zone(spec)
    out = [Record("@", NS_TTL, "NS", f"{ns_name(spec, s)}.") for s in servers]
    out += [Record(ns_name(spec, s)[:-len(origin) - 1], NS_TTL, "A", s.public_address)
            for s in servers]
    lua = lua_text(spec)
    out += [Record(n, ttl(spec), "LUA", f'A "{lua}"') for n in names(spec)]
    return out + extra_records(spec)


# what `records` may hold: plain data, never code (LUA) nor what the role itself owns
EXTRA_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "PTR", "DS", "SSHFP",
               "TLSA", "NAPTR", "HTTPS", "SVCB")


def records_path(spec: ClusterSpec) -> Path | None:
    """`roles.dns.records`, relative to the spec's folder (None when not set)."""
    given = settings(spec).get("records")
    if not given:
        return None
    path = Path(str(given)).expanduser()
    if not path.is_absolute() and not spec.path.startswith("<"):
        path = Path(spec.path).parent / path
    return path


def owned_names(spec: ClusterSpec) -> set[str]:
    """The names whose address records the role writes: the health-checked names and the
    name servers' (relative to the zone, '@' for the zone itself)."""
    origin = zone(spec)
    return set(names(spec)) | {ns_name(spec, s)[:-len(origin) - 1] for s in dns_servers(spec)}


def extra_records(spec: ClusterSpec) -> list[Record]:
    """The records of `roles.dns.records`, parsed (dnspython) and checked: only plain data
    types, no SOA, no NS at the zone itself, no address or alias at a name the role owns.
    A wrong file raises DnsConfigError naming the file, the record and the fix."""
    path = records_path(spec)
    if path is None:
        return []
    import dns.exception
    import dns.name
    import dns.rdatatype
    import dns.zone

    where = f"{spec.path}: roles.dns.records: {path}"
    try:
        text = path.read_text()
    except OSError as e:
        raise DnsConfigError(f"{where}: cannot read it ({e.strerror}) — write it with "
                             "`freehold migrate dns --import`, or fix the path") from None
    origin = dns.name.from_text(zone(spec))
    try:
        parsed = dns.zone.from_text(text, origin=origin, relativize=True, check_origin=False)
    except (dns.exception.DNSException, ValueError) as e:
        raise DnsConfigError(f"{where}: not a zone file ({e}) — give records as "
                             "`name ttl IN type value` lines") from None
    owned = owned_names(spec)
    out: list[Record] = []
    for name, node in sorted(parsed.nodes.items(), key=lambda kv: kv[0].to_text()):
        rel = name.to_text()
        for rds in node.rdatasets:
            kind = dns.rdatatype.to_text(rds.rdtype)
            record = f"{rel} {kind}"
            if kind not in EXTRA_TYPES:
                raise DnsConfigError(f"{where}: {record}: type {kind} is not allowed — keep "
                                     f"only {', '.join(EXTRA_TYPES)} records there")
            if kind == "NS" and rel == "@":
                raise DnsConfigError(f"{where}: {record}: the zone's own NS records come from "
                                     "its dns servers — remove it")
            if kind in ("A", "AAAA", "CNAME") and rel in owned:
                raise DnsConfigError(f"{where}: {record}: {rel} is answered by the dns role "
                                     "(health-checked or a name server) — remove it")
            out += [Record(rel, rds.ttl, kind, r.to_text()) for r in rds]
    return out


def serial(body: str) -> int:
    """The SOA serial of a zone body: its fingerprint (1 … 2^31-1), the same on every server."""
    return int(hashlib.sha256(body.encode()).hexdigest()[:8], 16) % 2147483647 + 1


def _line(r: Record) -> str:
    return f"{r.name:<24} {r.ttl:<6} IN {r.type:<5} {r.content}"


def zone_text(spec: ClusterSpec) -> str:
    """The zone file every dns server loads (the same text on each)."""
    origin = zone(spec)
    body = "\n".join(_line(r) for r in records(spec)) + "\n"
    first = dns_servers(spec)[0]
    soa = (f"@ {NS_TTL} IN SOA {ns_name(spec, first)}. hostmaster.{origin}. "
           f"{serial(body)} 10800 3600 1209600 {NEGATIVE_TTL}")
    return (f"; Managed by freehold (roles/dns): the zone {origin}, rendered from the spec "
            f"{spec.name}; the same file on every dns server.\n"
            f"$ORIGIN {origin}.\n$TTL {NS_TTL}\n{soa}\n{body}")


def zone_serial(spec: ClusterSpec) -> int:
    return int(zone_text(spec).split(" IN SOA ", 1)[1].split()[2])


def zone_file(spec: ClusterSpec) -> str:
    return f"{ZONE_DIR}/{zone(spec)}.zone"


def pdns_vars(spec: ClusterSpec, me: Server) -> dict[str, Any]:
    return {
        "server": me,
        "address": me.public_address,
        "port": DNS_PORT,
        "named_conf": NAMED_CONF,
        "dnssec_db": DNSSEC_DB if dnssec(spec) else "",
        "check_interval": check_interval(spec),
        "cache_ttl": min(CACHE_TTL, check_interval(spec)),
    }


def named_vars(spec: ClusterSpec) -> dict[str, Any]:
    return {"zone": zone(spec), "file": zone_file(spec)}


# ---- DNSSEC: one ECDSA P-256 key from the encrypted secrets, the same on every server ----

def private_key_file(private_b64: str) -> str:
    """The key in the BIND private-key format `pdnsutil import-zone-key` reads."""
    return ("Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\n"
            f"PrivateKey: {private_b64}\n")


def public_key(private_b64: str) -> str:
    """The DNSKEY's public key field (base64 of X‖Y) for a P-256 private scalar."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    scalar = int.from_bytes(base64.b64decode(private_b64), "big")
    point = ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint)
    return base64.b64encode(point[1:]).decode()


def dnskey_text(private_b64: str) -> str:
    return f"{DNSSEC_FLAGS} 3 {DNSSEC_ALGORITHM} {public_key(private_b64)}"


def ds_records(spec: ClusterSpec, private_b64: str) -> list[dict[str, Any]]:
    """The DS records the registrar gets for the zone (SHA-256 digest)."""
    import dns.dnssec
    import dns.name
    import dns.rdata

    key = dns.rdata.from_text("IN", "DNSKEY", dnskey_text(private_b64))
    ds = dns.dnssec.make_ds(dns.name.from_text(zone(spec)), key, "SHA256")
    return [{"key_tag": ds.key_tag, "algorithm": ds.algorithm, "digest_type": ds.digest_type,
             "digest": ds.digest.hex().upper(), "dnskey": dnskey_text(private_b64)}]


def export(spec: ClusterSpec, private_b64: str | None) -> dict[str, Any]:
    """What goes to the registrar: the name servers with their glue addresses, and the DS
    records when the zone is signed (`private_b64`: the secrets' key, needed only then)."""
    out: dict[str, Any] = {
        "zone": zone(spec),
        "nameservers": [{"name": ns_name(spec, s), "glue": [s.public_address],
                         "server": s.name, "provider": s.provider} for s in dns_servers(spec)],
        "dnssec": dnssec(spec),
        "ds": [],
    }
    if dnssec(spec):
        if not private_b64:
            raise DnsConfigError(f"{spec.path}: roles.dns.dnssec is on but the secrets hold no "
                                 "DNSSEC key yet — run `freehold deploy` once (it makes the key)")
        out["ds"] = ds_records(spec, private_b64)
    return out


def export_lines(doc: dict[str, Any]) -> list[str]:
    """`freehold dns export` as zone-file lines a registrar's form maps to one by one."""
    origin = doc["zone"]
    lines = [f"{origin}. {NS_TTL} IN NS {ns['name']}." for ns in doc["nameservers"]]
    lines += [f"{ns['name']}. {NS_TTL} IN A {a}" for ns in doc["nameservers"]
              for a in ns["glue"]]
    lines += [f"{origin}. {NS_TTL} IN DS {d['key_tag']} {d['algorithm']} {d['digest_type']} "
              f"{d['digest']}" for d in doc["ds"]]
    return lines
