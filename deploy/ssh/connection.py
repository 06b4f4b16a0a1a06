"""SSH settings and the one place SSH connections are made, for Fabric and pyinfra alike.

    ssh = settings_for(spec_path, spec)           # key, the spec's known_hosts files, timeouts
    with connection(server, ssh) as conn: ...     # Fabric; refuses unknown and changed keys
    data = pyinfra_data(ssh, servers, folder)     # pyinfra host data: strict checking
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric import Connection
from paramiko import BadHostKeyException, RejectPolicy, SSHException

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.ssh.hostkeys import (
    HostKeyError,
    KnownHosts,
    changed_key,
    check_presented,
    known_name,
    unknown_key,
    write_pinned,
)


@dataclass
class SSHSettings:
    """How to reach a spec's servers: login key (None: agent and ~/.ssh keys), the known_hosts
    files host keys are checked against, and bounds on time and parallelism."""

    spec_path: str | None = None
    key: str | None = None
    known_hosts: tuple[Path, ...] = ()
    connect_timeout: float = 10.0
    command_timeout: float = 15.0
    parallel: int = 32
    _known: KnownHosts | None = field(default=None, repr=False, compare=False)

    @property
    def known(self) -> KnownHosts:
        if self._known is None:
            self._known = KnownHosts.load(self.known_hosts)
        return self._known


def settings_for(spec_path: Path | str, spec: ClusterSpec, key: Path | str | None = None,
                 known_hosts: Path | str | None = None) -> SSHSettings:
    """The given key / known_hosts file, else the spec's known_hosts files and, for a lab spec
    whose lab made its key, the lab's login key."""
    files = (Path(known_hosts),) if known_hosts else tuple(Path(f) for f in spec.known_hosts)
    login = str(key) if key else None
    if login is None and spec.lab is not None:
        from freehold.deploy.lab.keys import ssh_dir
        from freehold.deploy.lab.layout import plan_lab

        lab_key = ssh_dir(plan_lab(spec)) / "id_ed25519"
        if lab_key.exists():
            login = str(lab_key)
    return SSHSettings(spec_path=str(spec_path), key=login, known_hosts=files)


class _RefuseUnknown(RejectPolicy):
    def __init__(self, server: Server, ssh: SSHSettings) -> None:
        self.server, self.ssh = server, ssh

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise unknown_key(self.server, key, self.ssh.known.files, self.ssh.spec_path)


class CheckedConnection(Connection):
    """A Fabric Connection whose changed-host-key refusal is one line (ChangedHostKey)."""

    server: Server | None = None
    ssh: SSHSettings | None = None

    def open(self) -> Any:
        try:
            return super().open()
        except BadHostKeyException as e:
            assert self.server is not None and self.ssh is not None
            found = self.ssh.known.keys_for(self.server)
            raise changed_key(self.server, e.key, e.expected_key, found[0] if found else None,
                              self.ssh.spec_path) from None


def connection(server: Server, ssh: SSHSettings) -> CheckedConnection:
    """A Fabric Connection to the server that accepts only the host key on record."""
    login = ssh.key or server.ssh_key
    kwargs: dict[str, Any] = {"look_for_keys": login is None, "allow_agent": login is None,
                              "banner_timeout": ssh.connect_timeout,
                              "auth_timeout": ssh.connect_timeout}
    if login:
        kwargs["key_filename"] = login
    conn = CheckedConnection(server.public_address, user=server.ssh_user, port=server.ssh_port,
                             connect_timeout=max(1, round(ssh.connect_timeout)),
                             connect_kwargs=kwargs)
    conn.server, conn.ssh = server, ssh
    found = ssh.known.keys_for(server)
    table = conn.client.get_host_keys()
    for kind, key in (found[1].items() if found else ()):
        table.add(known_name(server), kind, key)
    conn.client.set_missing_host_key_policy(_RefuseUnknown(server, ssh))
    return conn


def pyinfra_data(ssh: SSHSettings, servers: Iterable[Server], folder: Path) -> dict[str, Any]:
    """pyinfra host data for these servers: the known keys pinned, strict checking."""
    data: dict[str, Any] = {"ssh_known_hosts_file": str(write_pinned(ssh.known, servers, folder)),
                            "ssh_strict_host_key_checking": "yes"}
    if ssh.key:
        data["ssh_key"] = ssh.key
    return data


def refused_keys(servers: list[Server], ssh: SSHSettings) -> list[HostKeyError]:
    """Each reachable server whose host key is unknown or changed (an unreachable server is
    not a host key verdict: the caller reports it as down)."""
    def one(server: Server) -> HostKeyError | None:
        try:
            return check_presented(server, ssh.known, ssh.connect_timeout, ssh.spec_path)
        except (OSError, SSHException, EOFError):
            return None

    if not servers:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(ssh.parallel, len(servers)))) as pool:
        return [e for e in pool.map(one, servers) if e is not None]
