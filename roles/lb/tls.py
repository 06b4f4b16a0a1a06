"""The load balancers' TLS certificate: the spec's files (`roles.lb.tls_cert`, `tls_key`,
relative to the spec), or a self-signed one the kit makes (ECDSA P-256, for the lab and first
tests) and keeps in `~/.config/freehold/<spec name>.tls.pem` (0600, outside the repository),
reused as long as it names every virtual IP. HAProxy reads certificate and key from one file.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from freehold.deploy.atomic import write_bytes
from freehold.deploy.spec import ClusterSpec
from freehold.roles.lb.config import LbConfigError, settings, vips


def self_signed_path(spec: ClusterSpec) -> Path:
    return Path.home() / ".config" / "freehold" / f"{spec.name}.tls.pem"


def wanted_names(spec: ClusterSpec) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate must cover."""
    names = ["localhost", f"{spec.name}.freehold.test",
             *[str(h) for h in settings(spec).get("hostnames", []) or []]]
    ips = sorted(set(vips(spec).values()) | {s.public_address
                                             for s in spec.servers_with_role("lb")})
    return names, ips


def _covers(pem: bytes, names: list[str], ips: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ip = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return set(names) <= have_dns and set(ips) <= have_ip and left.days > 30


def make_self_signed(names: list[str], ips: list[str], days: int = 825) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "freehold lab")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a))
                                              for a in ips]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))


def certificate_pem(spec: ClusterSpec) -> str:
    """Certificate (+ chain) and key, PEM, as HAProxy wants them."""
    cfg = settings(spec)
    if cfg.get("tls_cert") or cfg.get("tls_key"):
        base = Path(spec.path).parent
        parts = []
        for field in ("tls_cert", "tls_key"):
            if not cfg.get(field):
                raise LbConfigError(f"{spec.path}: roles.lb.{field} is missing — give both "
                                    "tls_cert and tls_key, or neither for a self-signed one")
            path = (base / str(cfg[field])).resolve()
            if not path.exists():
                raise LbConfigError(f"{spec.path}: roles.lb.{field}: {path} does not exist — "
                                    "fix the path (relative to the spec)")
            parts.append(path.read_text().strip() + "\n")
        return "".join(parts)
    names, ips = wanted_names(spec)
    path = self_signed_path(spec)
    if path.exists() and _covers(path.read_bytes(), names, ips):
        return path.read_text()
    pem = make_self_signed(names, ips)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_bytes(path, pem, 0o600)
    return pem.decode()
