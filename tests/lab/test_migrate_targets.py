"""`migrate objects/database --to SPEC` reach the spec's services through an SSH tunnel, on real
lab servers: the small lab's servers, described by a spec that gives them the media, pgbouncer
and postgres roles. Stand-in listeners (python3 http.server) sit where SeaweedFS's S3 gateway
(mesh address:8333 on the media server) and HAProxy's primary port (127.0.0.1:5000 on the
pgbouncer server) listen in a deployed cluster, so the test checks the route and the tunnel,
host keys enforced, without deploying the data tier."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.fernet import Fernet

from freehold.deploy.lab import Lab
from freehold.deploy.migrate import MigrateError, targets
from freehold.deploy.secrets import KEY_ENV, SecretStore
from freehold.deploy.spec import load_spec

pytestmark = pytest.mark.timeout(240)
UNIT = "fh-migrate-stand-in"


def _serve(lab: Lab, server: str, bind: str, port: int, marker: str) -> None:
    """A stand-in listener as a transient systemd unit, up when this returns (bounded poll)."""
    lab.run(server, f"systemctl stop {UNIT} 2>/dev/null; mkdir -p /srv/{UNIT} && "
                    f"echo {marker} > /srv/{UNIT}/marker && systemd-run --unit={UNIT} "
                    f"python3 -m http.server {port} --bind {bind} --directory /srv/{UNIT}",
            check=True)
    probe = (f"for i in $(seq 100); do python3 -c \"import socket; socket.create_connection("
             f"('{bind}', {port}), 1)\" 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
    lab.run(server, probe, check=True, timeout=60)


@pytest.fixture()
def routed_spec(small_lab: Lab, small_lab_spec: Path, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The small lab as a cluster: a1 media, a2 pgbouncer, b1 postgres; secrets beside it."""
    doc = yaml.safe_load(small_lab_spec.read_text())
    roles = {"a1": ["media"], "a2": ["pgbouncer"], "b1": ["postgres"]}
    for s in doc["servers"]:
        s["roles"] = roles[s["name"]]
    doc["known_hosts"] = [small_lab.spec.known_hosts[0]]  # where the lab recorded its keys
    spec_path = tmp_path / "cluster.yaml"
    spec_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    key = Fernet.generate_key()
    monkeypatch.setenv(KEY_ENV, key.decode())
    spec = load_spec(spec_path)
    SecretStore(spec_path.with_suffix(".secrets"), spec.name, key=key).ensure(
        [s.name for s in spec.servers])
    mesh = spec.server("a1").mesh_address
    small_lab.run("a1", f"ip addr replace {mesh}/32 dev lo", check=True)
    try:
        _serve(small_lab, "a1", mesh, 8333, "media-gateway")
        _serve(small_lab, "a2", "127.0.0.1", 5000, "primary-route")
        yield spec_path
    finally:
        for name in ("a1", "a2"):
            small_lab.run(name, f"systemctl stop {UNIT}; rm -rf /srv/{UNIT}")
        small_lab.run("a1", f"ip addr del {mesh}/32 dev lo")


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    with opener.open(url, timeout=10) as r:
        return r.read().decode()


def test_spec_routes_through_ssh_tunnels(routed_spec: Path) -> None:
    with targets.media_target(str(routed_spec)) as loc:
        assert loc.bucket == "media" and loc.access_key and loc.secret_key
        assert urlsplit(loc.endpoint).hostname == "127.0.0.1"
        # the gateway listens on a1's mesh address only: reached from here through a1
        assert _get(f"{loc.endpoint}/marker") == "media-gateway\n"
    with targets.database_target(str(routed_spec)) as dsn:
        u = urlsplit(dsn)
        assert (u.username, u.hostname, u.path) == ("postgres", "127.0.0.1", "/freehold")
        assert _get(f"http://127.0.0.1:{u.port}/marker") == "primary-route\n"


def test_a_changed_host_key_is_refused(routed_spec: Path, small_lab: Lab, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from freehold.deploy.ssh import SSHSettings

    forged = tmp_path / "known_hosts"
    # a1's address with b1's host key: as if a1 had been replaced by another machine
    b1_key = small_lab.run("b1", "cat /etc/ssh/ssh_host_ed25519_key.pub", check=True).stdout
    forged.write_text(f"{small_lab.address('a1')} {' '.join(b1_key.split()[:2])}\n")
    monkeypatch.setattr(targets, "_ssh_settings", lambda route: SSHSettings(
        spec_path=str(routed_spec), key=str(small_lab.ssh_key_path), known_hosts=(forged,)))
    with pytest.raises(MigrateError, match=r"a1 \(.*\): HOST KEY CHANGED") as e, \
            targets.media_target(str(routed_spec)):
        pass
    assert "\n" not in str(e.value)
