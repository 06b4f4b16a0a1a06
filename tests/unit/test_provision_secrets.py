"""Secrets: generated once, encrypted beside the spec, key outside the repo."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from freehold.deploy.secrets import (
    CLUSTER_SECRETS,
    GENERATED_SECRETS,
    KEY_ENV,
    SecretsError,
    SecretStore,
    secrets_path_for,
    wireguard_public,
)


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_round_trip_with_key_file_created_0600(tmp_path: Path) -> None:
    key_path = tmp_path / "home" / "lab.key"
    store = SecretStore(tmp_path / "lab.secrets", "lab", key_path=key_path)
    first = store.ensure(["a1", "b1"])
    assert key_path.exists()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "lab.secrets").stat().st_mode) == 0o600
    again = SecretStore(tmp_path / "lab.secrets", "lab", key_path=key_path).ensure(["a1", "b1"])
    assert again.cluster == first.cluster
    assert again.hosts == first.hosts
    assert set(first.cluster) == set(CLUSTER_SECRETS) | set(GENERATED_SECRETS)
    # nothing in the file is readable without the key
    raw = (tmp_path / "lab.secrets").read_bytes()
    for value in first.cluster.values():
        assert value.encode() not in raw
    assert b"wireguard" not in raw


def test_new_host_gets_a_key_and_old_ones_stay(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "s.secrets", "s", key=Fernet.generate_key())
    one = store.ensure(["a1"])
    two = store.ensure(["a1", "c9"])
    assert two.hosts["a1"] == one.hosts["a1"]
    assert two.wireguard_private("c9") != two.wireguard_private("a1")
    assert two.cluster == one.cluster


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "s.secrets", "s", key_path=tmp_path / "k")
    store.ensure(["a1"], write=False)
    assert not (tmp_path / "s.secrets").exists()


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, key)
    store = SecretStore(tmp_path / "s.secrets", "s", key_path=tmp_path / "never")
    doc = store.ensure(["x"])
    assert not (tmp_path / "never").exists()
    assert Fernet(key.encode()).decrypt((tmp_path / "s.secrets").read_bytes().strip())
    assert SecretStore(tmp_path / "s.secrets", "s").load().cluster == doc.cluster


def test_wrong_key_is_one_clear_line(tmp_path: Path) -> None:
    SecretStore(tmp_path / "s.secrets", "s", key=Fernet.generate_key()).ensure(["a"])
    with pytest.raises(SecretsError) as e:
        SecretStore(tmp_path / "s.secrets", "s", key=Fernet.generate_key()).load()
    assert "cannot decrypt" in str(e.value) and "\n" not in str(e.value)


def test_missing_key_never_replaced_silently(tmp_path: Path) -> None:
    SecretStore(tmp_path / "s.secrets", "s", key_path=tmp_path / "k").ensure(["a"])
    (tmp_path / "k").unlink()
    with pytest.raises(SecretsError, match="key is missing"):
        SecretStore(tmp_path / "s.secrets", "s", key_path=tmp_path / "k").ensure(["a"])
    assert not (tmp_path / "k").exists()


def test_bad_key_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(SecretsError, match="not a Fernet key"):
        SecretStore(tmp_path / "s.secrets", "s").ensure(["a"])


def test_wireguard_public_key_matches_rfc7748() -> None:
    # RFC 7748 section 6.1, Alice's X25519 key pair
    private = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    public = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert wireguard_public(base64.b64encode(private).decode()) == \
        base64.b64encode(public).decode()


def test_secrets_path_is_beside_the_spec() -> None:
    assert secrets_path_for(Path("inventories/lab.yaml")) == Path("inventories/lab.secrets")
