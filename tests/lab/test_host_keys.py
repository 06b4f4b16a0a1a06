"""Host keys on real lab servers (OpenSSH): the lab records the keys it made where every SSH path
checks them; a server whose key changes is refused by deploy (pyinfra) and the Fabric runbooks
in one line until `freehold trust --replace` records the new key; an unknown server is refused
until `freehold trust` records it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from freehold.deploy.lab import Lab, keys
from freehold.deploy.spec import load_spec
from freehold.deploy.ssh import connection, settings_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)
NEW_KEY = ("ssh-keygen -q -t ed25519 -N '' -C reinstalled -f /etc/ssh/new_key && "
           "mv /etc/ssh/new_key /etc/ssh/ssh_host_ed25519_key && "
           "mv /etc/ssh/new_key.pub /etc/ssh/ssh_host_ed25519_key.pub && "
           "systemctl restart ssh && cat /etc/ssh/ssh_host_ed25519_key.pub")


def freehold(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FREEHOLD_SECRETS_KEY": Fernet.generate_key().decode()}
    env.pop("FREEHOLD_RELEASE_LABEL", None)
    return subprocess.run([sys.executable, "-m", "freehold.deploy", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
                          check=False)


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def bare_copy(spec: Path, to: Path, known_hosts: Path | None = None) -> Path:
    """The small lab's servers with no roles but base and mesh (a deploy passes placement),
    reading `known_hosts` when given."""
    text = re.sub(r"roles: \[\w+\]", "roles: []", spec.read_text())
    to.write_text(text + (f"known_hosts: [{known_hosts}]\n" if known_hosts else ""))
    return to


def fingerprint(pub: str, tmp: Path) -> str:
    path = tmp / "key.pub"
    path.write_text(pub)
    return subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


@pytest.fixture
def reinstalled_b1(small_lab: Lab, small_lab_spec: Path, tmp_path: Path) -> Iterator[str]:
    """b1 with a new host key made on it (its public line); afterwards the lab's key again,
    recorded again by the lab."""
    new_pub = small_lab.run("b1", NEW_KEY, check=True).stdout.strip()
    try:
        yield new_pub
    finally:
        # ssh to b1 now presents the new key: trust exactly that key for the restore
        known = tmp_path / "restore_known_hosts"
        known.write_text(f"{small_lab.address('b1')} {' '.join(new_pub.split()[:2])}\n")
        args = [a.replace(str(small_lab.known_hosts_path), str(known))
                for a in small_lab.ssh_args("b1")]
        own = keys.ssh_dir(small_lab.plan) / "host_keys" / "b1"
        own_pub = Path(f"{own}.pub").read_text().strip()
        restore = (f"cat > /etc/ssh/ssh_host_ed25519_key && echo '{own_pub}' > "
                   "/etc/ssh/ssh_host_ed25519_key.pub && systemctl restart ssh")
        subprocess.run([*args, restore], input=own.read_text(), text=True, check=True,
                       timeout=60)
        keys.record_in_spec(small_lab.plan, small_lab.spec)


def test_a_changed_host_key_is_refused_until_trust_replace(
        small_lab: Lab, small_lab_spec: Path, reinstalled_b1: str, tmp_path: Path) -> None:
    spec_known = small_lab_spec.with_name(f"{small_lab_spec.stem}.known_hosts")
    old_pub = (keys.ssh_dir(small_lab.plan) / "host_keys" / "b1.pub").read_text()
    old_fp, new_fp = fingerprint(old_pub, tmp_path), fingerprint(reinstalled_b1, tmp_path)
    b1 = small_lab.address("b1")
    # the lab recorded the key it made for b1 where every SSH path checks it
    assert f"{b1} {' '.join(old_pub.split()[:2])}" in spec_known.read_text()

    # deploy (pyinfra): refused before anything runs, one line with both fingerprints
    bare = bare_copy(small_lab_spec, tmp_path / "bare.yaml", known_hosts=spec_known)
    out = freehold("plan", bare, "--roles", "base", "--limit", "b1")
    assert len(errors(out)) == 1, out.stderr
    [line] = errors(out)
    assert out.returncode == 1
    assert line.startswith(f"error: b1 ({b1}): HOST KEY CHANGED")
    assert new_fp in line and old_fp in line
    assert f"freehold trust {bare} --server b1 --replace" in line
    # a Fabric runbook (b1 is the postgres member): the same line
    out = freehold("failover", small_lab_spec)
    assert out.returncode == 1
    assert errors(out) == [line.replace(str(bare), str(small_lab_spec))]

    # trust without --replace refuses too, and writes nothing
    before = spec_known.read_text()
    out = freehold("trust", small_lab_spec, "--server", "b1")
    assert out.returncode == 1 and "HOST KEY CHANGED" in errors(out)[0]
    assert spec_known.read_text() == before

    out = freehold("trust", small_lab_spec, "--server", "b1", "--replace")
    assert out.returncode == 0, out.stderr
    assert "trust on first use" in " ".join(out.stderr.split())
    assert f"b1 ({b1}): 256 {new_fp} (ED25519) recorded, replacing {old_fp}" in out.stdout
    text = spec_known.read_text()
    assert reinstalled_b1.split()[1] in text and old_pub.split()[1] not in text

    spec = load_spec(small_lab_spec)
    with connection(spec.server("b1"), settings_for(small_lab_spec, spec)) as conn:
        assert conn.run("hostname", hide=True, in_stream=False).stdout.strip() == "b1"
    out = freehold("plan", bare, "--roles", "base", "--limit", "b1", "--json")
    assert "HOST KEY" not in out.stderr and out.returncode == 0, out.stderr[-2000:]


def test_an_unknown_server_is_refused_until_trusted(small_lab: Lab, small_lab_spec: Path,
                                                    tmp_path: Path) -> None:
    copy = bare_copy(small_lab_spec, tmp_path / "other.yaml")  # no known_hosts beside it
    out = freehold("plan", copy, "--roles", "base", "--limit", "a1")
    assert len(errors(out)) == 1, out.stderr
    [line] = errors(out)
    assert out.returncode == 1
    assert line.startswith(f"error: a1 ({small_lab.address('a1')}): host key SHA256:")
    assert f"freehold trust {copy} --server a1" in line
    assert not (tmp_path / "other.known_hosts").exists()

    lab_pub = (keys.ssh_dir(small_lab.plan) / "host_keys" / "a1.pub").read_text()
    out = freehold("trust", copy, "--server", "a1")
    assert out.returncode == 0, out.stderr
    assert f"256 {fingerprint(lab_pub, tmp_path)} (ED25519) recorded" in out.stdout
    spec = load_spec(copy)
    with connection(spec.server("a1"), settings_for(copy, spec)) as conn:
        assert conn.run("hostname", hide=True, in_stream=False).stdout.strip() == "a1"
