"""Host keys: the known_hosts files a spec names, what a server presents, and the verdict.

Every SSH path checks the key a server presents against the spec's known_hosts files (the
first file that names the server decides); an unknown key and a changed key are refused with
one line naming the server and the fix. Keys are recorded only explicitly: `freehold trust`
(fetched or read from a file, fingerprints printed) or the lab, which made its servers' keys.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paramiko import HostKeys, PKey, SSHException, Transport
from paramiko.hostkeys import HostKeyEntry

from freehold.deploy.atomic import write_text
from freehold.deploy.spec import Server

SSH_PORT = 22


class HostKeyError(SSHException):
    """A server's host key was refused; the message is one line: server, keys, fix."""


class UnknownHostKey(HostKeyError):
    pass


class ChangedHostKey(HostKeyError):
    pass


def known_name(server: Server) -> str:
    """The server's name in known_hosts, as OpenSSH and paramiko look it up."""
    address = server.public_address
    return address if server.ssh_port == SSH_PORT else f"[{address}]:{server.ssh_port}"


def describe(key: PKey) -> str:
    """`256 SHA256:… (ED25519)`, as `ssh-keygen -l` prints it."""
    kind = key.get_name().removeprefix("ssh-").split("-")[0].upper()
    return f"{key.get_bits()} {key.fingerprint} ({kind})"


def trust_hint(spec_path: str | Path | None, server: Server, replace: bool = False) -> str:
    spec = spec_path or "SPEC"
    return f"freehold trust {spec} --server {server.name}" + (" --replace" if replace else "")


def unknown_key(server: Server, presented: PKey, files: Sequence[Path],
                spec_path: str | Path | None) -> UnknownHostKey:
    where = ", ".join(str(f) for f in files) or "no known_hosts file"
    return UnknownHostKey(
        f"{server.name} ({known_name(server)}): host key {presented.fingerprint} is not in "
        f"{where} — check that fingerprint with the server's provider or console, then record "
        f"it: `{trust_hint(spec_path, server)}` (or --from-file with keys got out of band)")


def changed_key(server: Server, presented: PKey, expected: PKey, source: Path | None,
                spec_path: str | Path | None) -> ChangedHostKey:
    return ChangedHostKey(
        f"{server.name} ({known_name(server)}): HOST KEY CHANGED — it presents "
        f"{presented.get_name()} {presented.fingerprint}, {source or 'known_hosts'} records "
        f"{expected.get_name()} {expected.fingerprint}; someone may be intercepting the "
        "connection: refused. If the server was reinstalled, confirm the new fingerprint out of "
        f"band, then `{trust_hint(spec_path, server, replace=True)}`")


@dataclass
class KnownHosts:
    """The known_hosts files in order; the first file naming a server holds its keys."""

    files: tuple[Path, ...]
    _tables: list[tuple[Path, HostKeys]] = field(default_factory=list, repr=False)

    @classmethod
    def load(cls, files: Iterable[Path | str]) -> KnownHosts:
        paths = tuple(Path(os.path.expanduser(str(f))) for f in files)
        known = cls(paths)
        for path in paths:
            if path.is_file():
                known._tables.append((path, HostKeys(str(path))))
        return known

    def keys_for(self, server: Server) -> tuple[Path, dict[str, PKey]] | None:
        """(the file, its keys by type) for the server, or None when no file names it."""
        for path, table in self._tables:
            entry = table.lookup(known_name(server))
            if entry:
                return path, {kind: entry[kind] for kind in entry}
        return None

    def verdict(self, server: Server, presented: PKey,
                spec_path: str | Path | None) -> HostKeyError | None:
        """None when the presented key is the known one; else the error to raise."""
        found = self.keys_for(server)
        if found is None:
            return unknown_key(server, presented, self.files, spec_path)
        path, keys = found
        expected = keys.get(presented.get_name())
        if expected != presented:
            return changed_key(server, presented, expected or next(iter(keys.values())), path,
                               spec_path)
        return None

    def pinned_lines(self, servers: Iterable[Server]) -> list[str]:
        """known_hosts lines holding exactly the keys these servers must present."""
        lines = []
        for server in servers:
            found = self.keys_for(server)
            for key in (found[1].values() if found else ()):
                lines.append(f"{known_name(server)} {key.get_name()} {key.get_base64()}\n")
        return lines


def write_pinned(known: KnownHosts, servers: Iterable[Server], folder: Path) -> Path:
    """The servers' known keys in one file for pyinfra (it reads one known_hosts file and
    caches it by name: the name is the content's hash, so a changed file is read afresh)."""
    text = "".join(known.pinned_lines(servers))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.known_hosts"
    if not path.exists():
        write_text(path, text, 0o644)
    return path


def presented_key(server: Server, timeout: float, prefer: Sequence[str] = ()) -> PKey:
    """The host key the server presents (key exchange only: no login)."""
    sock = socket.create_connection((server.public_address, server.ssh_port), timeout=timeout)
    transport = Transport(sock)
    try:
        transport.banner_timeout = timeout
        if prefer:  # ask for the type on record first, as paramiko's client does
            opts = transport.get_security_options()
            opts.key_types = [*prefer, *(k for k in opts.key_types if k not in prefer)]
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def check_presented(server: Server, known: KnownHosts, timeout: float,
                    spec_path: str | Path | None) -> HostKeyError | None:
    """Connect, compare the key with the known one; raises OSError/SSHException when the
    server cannot be reached (that is not a host key verdict)."""
    found = known.keys_for(server)
    key = presented_key(server, timeout, tuple(found[1]) if found else ())
    return known.verdict(server, key, spec_path)


def record(path: Path, entries: Iterable[tuple[str, PKey]], replace: Iterable[str] = ()) -> None:
    """Add (known_hosts name, key) lines to `path`, first dropping its lines for the names in
    `replace` (hashed names included); other lines are kept as they are. Written atomically."""
    drop = set(replace)
    kept: list[str] = []
    have = HostKeys()
    for line in (path.read_text().splitlines() if path.exists() else []):
        entry = _entry(line)
        if entry is not None:
            names = HostKeys()
            for h in entry.hostnames:
                names.add(h, entry.key.get_name(), entry.key)
            if any(names.lookup(h) is not None for h in drop):
                continue
            for h in entry.hostnames:
                have.add(h, entry.key.get_name(), entry.key)
        kept.append(line + "\n")
    for name, key in entries:
        if not have.check(name, key):
            kept.append(f"{name} {key.get_name()} {key.get_base64()}\n")
            have.add(name, key.get_name(), key)
    write_text(path, "".join(kept), 0o644)


def _entry(line: str) -> HostKeyEntry | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        return HostKeyEntry.from_line(text)
    except SSHException:
        return None


def parse_keyscan(text: str) -> list[tuple[list[str], PKey]]:
    """(host names, key) per line of an ssh-keyscan output or known_hosts file."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = _entry(line)
        if entry is None:
            raise ValueError(f"line {lineno}: not a host key line (`host type base64`)")
        out.append((list(entry.hostnames), entry.key))
    return out
