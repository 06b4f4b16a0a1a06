"""`freehold trust` records host keys explicitly; `plan`/`failover` refuse unknown and changed
keys with one line (a real SSH server on loopback plays the server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.ssh_server import Site, keygen, running_site

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with running_site(tmp_path, monkeypatch) as s:
        yield s


def freehold(*args: str | Path) -> tuple[int, str, str]:
    """In its own process: `plan` patches the process with gevent, as the CLI must."""
    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-m", "freehold.deploy", *map(str, args)],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                         check=False)
    return res.returncode, res.stdout, res.stderr


def keygen_line(pub: Path) -> str:
    """`256 SHA256:… (ED25519)` as ssh-keygen prints the key's fingerprint."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True,
                         text=True).stdout.split()
    return f"{out[0]} {out[1]} {out[-1]}"


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_trust_fetches_prints_fingerprints_and_records(site: Site) -> None:
    code, out, err = freehold("trust", site.spec_path)
    assert code == 0, err
    assert "trust on first use" in " ".join(err.split())          # said loudly
    fingerprint = keygen_line(site.host_key_path.with_suffix(".pub"))
    assert f"s1 ([127.0.0.1]:{site.server.port}): {fingerprint} recorded" in out
    assert site.known_hosts.read_text() == (f"[127.0.0.1]:{site.server.port} ssh-ed25519 "
                                            f"{site.host_key.get_base64()}\n")
    code, out, _ = freehold("trust", site.spec_path)
    assert code == 0 and "already recorded" in out


def test_trust_refuses_a_changed_key_unless_replace(site: Site) -> None:
    old = site.host_key
    site.pin(old)
    site.server.host_key = keygen(site.tmp / "new_host_key", "root@s1")
    code, _, err = freehold("trust", site.spec_path)
    [line] = errors(err)
    assert code == 1
    assert "HOST KEY CHANGED" in line and old.fingerprint in line
    assert site.server.host_key.fingerprint in line and "--replace" in line
    assert old.get_base64() in site.known_hosts.read_text()      # nothing replaced

    code, out, err = freehold("trust", site.spec_path, "--server", "s1", "--replace")
    assert code == 0, err
    text = site.known_hosts.read_text()
    assert site.server.host_key.get_base64() in text and old.get_base64() not in text
    assert f"{keygen_line(site.tmp / 'new_host_key.pub')} recorded, replacing " \
        f"{old.fingerprint}" in out


def test_trust_from_a_keyscan_file_fetches_nothing(site: Site) -> None:
    scan = subprocess.run(["ssh-keyscan", "-p", str(site.server.port), "-t", "ed25519",
                           "127.0.0.1"], capture_output=True, text=True, timeout=30).stdout
    keys = site.tmp / "scan.txt"
    keys.write_text(scan)
    site.server.stop()               # out of band: the server is not asked again
    code, out, err = freehold("trust", site.spec_path, "--from-file", keys)
    assert code == 0, err
    assert "trust on first use" not in err
    assert site.host_key.fingerprint in out
    assert site.host_key.get_base64() in site.known_hosts.read_text()

    keys.write_text("# nothing for s1\n")
    code, _, err = freehold("trust", site.spec_path, "--from-file", keys)
    assert code == 2 and errors(err) == [f"error: --from-file {keys}: no key for s1 — add their "
                                         "lines (ssh-keyscan -t ed25519 ADDRESS) or choose "
                                         "servers with --server"]
    code, _, err = freehold("trust", site.spec_path, "--server", "s9")
    assert code == 2 and "--server s9: not a server" in err


def test_deploy_refuses_an_unknown_key_in_one_line(site: Site) -> None:
    code, _, err = freehold("plan", site.spec_path)
    [line] = errors(err)
    assert code == 1
    assert line.startswith(f"error: s1 ([127.0.0.1]:{site.server.port}): host key "
                           f"{site.host_key.fingerprint} is not in {site.known_hosts}")
    assert f"freehold trust {site.spec_path} --server s1" in line
    assert not site.known_hosts.exists()                    # never recorded on first use
    assert "Traceback" not in err


def test_fabric_runbooks_refuse_a_changed_key_in_one_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    with running_site(tmp_path, monkeypatch, roles="[postgres]") as site:
        old = keygen(tmp_path / "old_host_key")
        site.pin(old)
        code, _, err = freehold("failover", site.spec_path)
        [line] = errors(err)
        assert code == 1
        assert line.startswith(f"error: s1 ([127.0.0.1]:{site.server.port}): HOST KEY CHANGED")
        assert site.host_key.fingerprint in line and old.fingerprint in line
        assert f"freehold trust {site.spec_path} --server s1 --replace" in line
