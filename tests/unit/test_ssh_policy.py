"""Host-key policy (deploy.ssh) against a real SSH server on loopback: an unknown key and a
changed key are refused with one line, the known key is let in, pyinfra checks strictly."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from freehold.deploy.inventory import build_inventory
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.deploy.ssh import (
    ChangedHostKey,
    SSHSettings,
    UnknownHostKey,
    connection,
    describe,
    pyinfra_data,
    refused_keys,
    settings_for,
)
from tests.unit.ssh_server import Site, keygen, running_site


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with running_site(tmp_path, monkeypatch) as s:
        yield s


def settings(site: Site) -> SSHSettings:
    ssh = settings_for(site.spec_path, load_spec(site.spec_path))
    ssh.connect_timeout = 5
    return ssh


def test_known_key_is_let_in(site: Site) -> None:
    site.pin(site.host_key)
    site.server.allow_exec = True
    s1 = load_spec(site.spec_path).server("s1")
    with connection(s1, settings(site)) as conn:
        assert conn.run("echo in", hide=True, in_stream=False).stdout == "in\n"
    assert refused_keys([s1], settings(site)) == []


def test_unknown_key_is_refused_with_one_line(site: Site) -> None:
    s1 = load_spec(site.spec_path).server("s1")
    with pytest.raises(UnknownHostKey) as e, connection(s1, settings(site)) as conn:
        conn.run("echo never", hide=True, in_stream=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("s1 ([127.0.0.1]:")
    assert site.host_key.fingerprint in msg
    assert f"freehold trust {site.spec_path} --server s1" in msg
    [pre] = refused_keys([s1], settings(site))      # the deploy's check says the same
    assert str(pre) == msg


def test_changed_key_is_refused_naming_both_fingerprints(site: Site) -> None:
    old = keygen(site.tmp / "old_host_key")
    site.pin(old)
    s1 = load_spec(site.spec_path).server("s1")
    with pytest.raises(ChangedHostKey) as e, connection(s1, settings(site)) as conn:
        conn.run("echo never", hide=True, in_stream=False)
    msg = str(e.value)
    assert "\n" not in msg and "HOST KEY CHANGED" in msg
    assert site.host_key.fingerprint in msg and old.fingerprint in msg
    assert f"freehold trust {site.spec_path} --server s1 --replace" in msg
    assert [str(x) for x in refused_keys([s1], settings(site))] == [msg]


def test_an_unreachable_server_is_no_host_key_verdict(site: Site) -> None:
    s1 = load_spec(site.spec_path).server("s1")
    site.server.stop()
    assert refused_keys([s1], settings(site)) == []


def test_fingerprints_read_as_ssh_keygen_prints_them(site: Site) -> None:
    out = subprocess.run(["ssh-keygen", "-lf", f"{site.host_key_path}.pub"], check=True,
                         capture_output=True, text=True).stdout.split()
    bits, fingerprint, kind = out[0], out[1], out[-1]
    assert describe(site.host_key) == f"{bits} {fingerprint} {kind}"


def _pyinfra_connect(spec: ClusterSpec, data: dict | None) -> tuple[bool, str]:
    from pyinfra.api import Config, State
    from pyinfra.api.exceptions import ConnectError

    inventory = build_inventory(spec, ssh=data)
    state = State(inventory, Config(CONNECT_TIMEOUT=5))
    host = inventory.get_host("s1")
    host.data.ssh_connect_retries = 0
    try:
        host.connect(show_errors=False, raise_exceptions=True)
    except ConnectError as e:
        return False, str(e)
    finally:
        host.disconnect()
        del state
    return True, ""


def test_pyinfra_checks_host_keys_strictly(site: Site) -> None:
    spec = load_spec(site.spec_path)
    # without our settings: still strict (pyinfra's own default is accept-new)
    assert build_inventory(spec).get_host("s1").data.ssh_strict_host_key_checking == "yes"
    ok, _ = _pyinfra_connect(spec, None)
    assert not ok
    assert not site.known_hosts.exists()     # nothing recorded on first use

    site.pin(keygen(site.tmp / "old_host_key"))
    data = pyinfra_data(settings(site), spec.servers, site.tmp / "pinned")
    assert data["ssh_strict_host_key_checking"] == "yes"
    ok, why = _pyinfra_connect(spec, data)
    assert not ok and "does not match" in why

    site.pin(site.host_key)
    data = pyinfra_data(settings(site), spec.servers, site.tmp / "pinned")
    assert Path(data["ssh_known_hosts_file"]).read_text().split()[2] == \
        site.host_key.get_base64()
    assert _pyinfra_connect(spec, data) == (True, "")
