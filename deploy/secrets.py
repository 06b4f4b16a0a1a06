"""Cluster secrets: generated on first deploy, kept beside the spec, encrypted with Fernet.

The file `<spec without suffix>.secrets` (e.g. `inventories/lab.secrets`) holds one Fernet token
of a JSON document. The key comes from the environment variable `FREEHOLD_SECRETS_KEY`, else from
`~/.config/freehold/<spec-name>.key` (created 0600 on first use). The key never lives in the
repository; the encrypted file may.

Passwords reach servers only inside files written 0600/0640 (never in command lines).
"""

from __future__ import annotations

import base64
import json
import os
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from freehold.deploy.atomic import write_bytes

KEY_ENV = "FREEHOLD_SECRETS_KEY"
FORMAT_VERSION = 1

# cluster-wide secrets and how long (in url-safe characters) each is
CLUSTER_SECRETS: dict[str, int] = {
    "postgres_superuser": 32,   # postgres superuser (Patroni connects with it)
    "postgres_replication": 32,  # streaming replication user
    "postgres_rewind": 32,       # pg_rewind user
    "postgres_app": 32,          # the app's database owner
    "patroni_rest": 32,          # Patroni REST API (unsafe methods)
    "redis": 40,                 # Redis requirepass / masterauth
    "s3_access_key": 20,         # SeaweedFS S3 gateway identity
    "s3_secret_key": 40,
    "app_secret_key": 64,        # the app's session signing key
    "backup_ssh": 43,            # seed of the pgBackRest SSH key (roles/backup)
}


def dnssec_private_key() -> str:
    """A DNSSEC signing key (ECDSA P-256, algorithm 13): base64 of its 32-byte private scalar,
    as BIND's private-key format holds it (roles/dns imports it on every dns server)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _b64(key.private_numbers().private_value.to_bytes(32, "big"))


# cluster-wide secrets that are keys rather than random text, and how each is made
GENERATED_SECRETS: dict[str, Callable[[], str]] = {
    "dnssec_key": dnssec_private_key,   # the zone's DNSSEC key (roles/dns)
}


class SecretsError(Exception):
    """Secrets that cannot be read: one line naming the file and the fix."""


def secrets_path_for(spec_path: Path) -> Path:
    return Path(spec_path).with_suffix(".secrets")


def default_key_path(spec_name: str) -> Path:
    return Path.home() / ".config" / "freehold" / f"{spec_name}.key"


def wireguard_keypair() -> tuple[str, str]:
    """(private, public) WireGuard keys, base64 as `wg genkey | wg pubkey` prints them."""
    key = X25519PrivateKey.generate()
    return _b64(key.private_bytes_raw()), wireguard_public(_b64(key.private_bytes_raw()))


def wireguard_public(private_b64: str) -> str:
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private_b64))
    return _b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _token(length: int) -> str:
    """Random url-safe text with no characters that need quoting in any config format."""
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(pysecrets.choice(alphabet) for _ in range(length))


@dataclass
class Secrets:
    """The decrypted document: `cluster[name]` and `hosts[server]["wireguard_private"]`."""

    cluster: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.cluster[name]

    def wireguard_private(self, host: str) -> str:
        return self.hosts[host]["wireguard_private"]

    def wireguard_public(self, host: str) -> str:
        return wireguard_public(self.wireguard_private(host))

    def to_doc(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "cluster": self.cluster, "hosts": self.hosts}

    def fill(self, host_names: list[str]) -> bool:
        """Generate whatever is missing; True when something was added."""
        added = False
        for name, length in CLUSTER_SECRETS.items():
            if not self.cluster.get(name):
                self.cluster[name] = _token(length)
                added = True
        for name, make in GENERATED_SECRETS.items():
            if not self.cluster.get(name):
                self.cluster[name] = make()
                added = True
        for host in host_names:
            entry = self.hosts.setdefault(host, {})
            if not entry.get("wireguard_private"):
                entry["wireguard_private"] = wireguard_keypair()[0]
                added = True
        return added


class SecretStore:
    """Read, fill and write the encrypted secrets file of one spec."""

    def __init__(self, path: Path, spec_name: str, key: bytes | None = None,
                 key_path: Path | None = None) -> None:
        self.path = Path(path)
        self.spec_name = spec_name
        self._key = key
        self.key_path = key_path or default_key_path(spec_name)

    # -- key ------------------------------------------------------------------------------
    def key_source(self) -> str:
        if self._key is not None:
            return "the given key"
        if os.environ.get(KEY_ENV):
            return f"${KEY_ENV}"
        return str(self.key_path)

    def key(self, create: bool = True) -> bytes:
        if self._key is not None:
            return self._key
        env = os.environ.get(KEY_ENV)
        if env:
            self._key = env.strip().encode()
        elif self.key_path.exists():
            self._key = self.key_path.read_bytes().strip()
        elif create:
            self._key = Fernet.generate_key()
            self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self._key + b"\n")
        else:
            raise SecretsError(f"{self.path}: no key — set ${KEY_ENV} or create {self.key_path}")
        try:
            Fernet(self._key)
        except ValueError:
            raise SecretsError(f"{self.key_source()}: not a Fernet key — generate one with "
                               "`python -c 'from cryptography.fernet import Fernet; "
                               "print(Fernet.generate_key().decode())'`") from None
        return self._key

    # -- file -----------------------------------------------------------------------------
    def load(self) -> Secrets:
        if not self.path.exists():
            return Secrets()
        if self._key is None and not os.environ.get(KEY_ENV) and not self.key_path.exists():
            raise SecretsError(f"{self.path}: exists but its key is missing — set ${KEY_ENV} "
                               f"or restore {self.key_path} (a new key cannot read it)")
        try:
            raw = Fernet(self.key(create=False)).decrypt(self.path.read_bytes().strip())
        except InvalidToken:
            raise SecretsError(f"{self.path}: cannot decrypt with the key from "
                               f"{self.key_source()} — use the key it was written with") from None
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError:
            raise SecretsError(f"{self.path}: decrypted but not JSON — restore it from "
                               "a backup") from None
        return Secrets(cluster=dict(doc.get("cluster", {})),
                       hosts={k: dict(v) for k, v in doc.get("hosts", {}).items()})

    def save(self, secrets: Secrets) -> None:
        token = Fernet(self.key()).encrypt(json.dumps(secrets.to_doc(), sort_keys=True).encode())
        write_bytes(self.path, token + b"\n", 0o600)

    def ensure(self, host_names: list[str], write: bool = True) -> Secrets:
        """Load, generate what is missing for these hosts, and save when anything was added
        (unless `write` is False, as in a dry run)."""
        secrets = self.load()
        if secrets.fill(host_names) and write:
            self.save(secrets)
        return secrets
