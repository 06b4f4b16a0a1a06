"""A real SSH server on loopback for host-key tests (paramiko's server side, in threads).

It presents `host_key` (swap it to play a reinstalled or impersonated server), lets in the
client key it was given, and (only when `allow_exec` is set) runs exec requests with bash on
this machine.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

SPEC = """\
name: keys
providers: [{{name: p1, kind: rented}}]
sites: [{{name: a, provider: p1}}]
defaults: {{ssh_port: {port}, ssh_key: {key}}}
servers:
  - {{name: s1, site: a, address: 127.0.0.1, roles: {roles}}}
"""


def keygen(path: Path, comment: str = "test") -> paramiko.Ed25519Key:
    """A new ed25519 key pair at `path` (and `path`.pub), made by ssh-keygen."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True)
    return paramiko.Ed25519Key(filename=str(path))


class _Handler(paramiko.ServerInterface):
    def __init__(self, client_key: paramiko.PKey, allow_exec: bool) -> None:
        self.client_key, self.allow_exec = client_key, allow_exec

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key == self.client_key
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (paramiko.OPEN_SUCCEEDED if kind == "session"
                else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if not self.allow_exec:
            return False
        threading.Thread(target=_execute, args=(channel, command.decode()), daemon=True).start()
        return True


def _execute(channel: paramiko.Channel, command: str) -> None:
    out = subprocess.run(["bash", "-c", command], capture_output=True, timeout=30, check=False)
    channel.sendall(out.stdout)
    channel.sendall_stderr(out.stderr)
    channel.send_exit_status(out.returncode)
    channel.close()


class SSHServer:
    def __init__(self, host_key: paramiko.PKey, client_key: paramiko.PKey) -> None:
        self.host_key, self.client_key = host_key, client_key
        self.allow_exec = False
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by stop()
                return
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            self.transports.append(t)
            try:
                t.start_server(server=_Handler(self.client_key, self.allow_exec))
            except (paramiko.SSHException, EOFError, OSError):
                t.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # shutdown wakes the accept(); close alone does not
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for t in self.transports:
            t.close()
        self.thread.join(timeout=5)


class Site:
    """A one-server spec (`keys.yaml`, server s1) whose server is an SSHServer on loopback;
    its known_hosts file is the default one beside the spec."""

    def __init__(self, tmp: Path, roles: str = "[]") -> None:
        self.tmp = tmp
        self.client_key_path = tmp / "id_client"
        client = keygen(self.client_key_path, "client")
        self.host_key_path = tmp / "host_key"
        self.host_key = keygen(self.host_key_path, "root@s1")
        self.server = SSHServer(self.host_key, client)
        self.spec_path = tmp / "keys.yaml"
        self.spec_path.write_text(SPEC.format(port=self.server.port, key=self.client_key_path,
                                              roles=roles))
        self.known_hosts = tmp / "keys.known_hosts"

    def pin(self, key: paramiko.PKey) -> None:
        self.known_hosts.write_text(f"[127.0.0.1]:{self.server.port} {key.get_name()} "
                                    f"{key.get_base64()}\n")


@contextlib.contextmanager
def running_site(tmp: Path, monkeypatch: pytest.MonkeyPatch, roles: str = "[]"
                 ) -> Iterator[Site]:
    """A Site for the `with` block; HOME is the test's own (its ~/.ssh/known_hosts too)."""
    monkeypatch.setenv("HOME", str(tmp / "home"))
    site = Site(tmp, roles)
    try:
        yield site
    finally:
        site.server.stop()
