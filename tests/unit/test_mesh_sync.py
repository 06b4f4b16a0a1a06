"""roles/mesh/files/wg_sync.py, the mesh unit's reload: only the peers that differ are set."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "mesh" / "files" / "wg_sync.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wg_sync", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


wg = load()
PRIV, PUB = "cHJpdmF0ZQ==", "cHVibGlj"


def conf(peers: list[tuple[str, str, str]], port: int = 51820, priv: str = PRIV,
         keepalive: int | None = 25) -> str:
    out = [f"[Interface]\nListenPort = {port}\nPrivateKey = {priv}\n"]
    for key, ip, endpoint in peers:
        out.append(f"[Peer]\n# a comment\nPublicKey = {key}\nAllowedIPs = {ip}/32\n"
                   f"Endpoint = {endpoint}\n"
                   + (f"PersistentKeepalive = {keepalive}\n" if keepalive else ""))
    return "\n".join(out)


def dump(peers: list[tuple[str, str, str]], port: int = 51820, priv: str = PRIV,
         keepalive: str = "25") -> str:
    lines = [f"{priv}\t{PUB}\t{port}\toff"]
    lines += [f"{k}\t(none)\t{e}\t{ip}/32\t0\t0\t0\t{keepalive}" for k, ip, e in peers]
    return "\n".join(lines) + "\n"


A = ("a=", "100.64.0.1", "10.0.0.1:51820")
B = ("b=", "100.64.0.2", "10.0.0.2:51820")
C = ("c=", "100.64.0.3", "10.0.0.3:51820")


def test_unchanged_peers_are_not_touched_new_ones_added_gone_ones_removed() -> None:
    whole, args, counts = wg.plan(conf([A, C]), dump([A, B]))
    assert not whole
    assert args == ["peer", "c=", "allowed-ips", "100.64.0.3/32", "endpoint", "10.0.0.3:51820",
                    "persistent-keepalive", "25", "peer", "b=", "remove"]
    assert counts == {"added": 1, "changed": 0, "removed": 1, "kept": 1}


def test_nothing_to_do_when_the_interface_matches() -> None:
    assert wg.plan(conf([A, B]), dump([A, B])) == (False, [], {"added": 0, "changed": 0,
                                                                "removed": 0, "kept": 2})


def test_a_moved_peer_gets_only_its_new_endpoint() -> None:
    moved = ("a=", "100.64.0.1", "10.9.9.9:51820")
    _, args, counts = wg.plan(conf([moved, B]), dump([A, B]))
    assert args == ["peer", "a=", "endpoint", "10.9.9.9:51820"]   # allowed IPs untouched
    assert counts["changed"] == 1


def test_a_readdressed_peer_gets_its_allowed_ips() -> None:
    _, args, _ = wg.plan(conf([("a=", "100.64.0.9", A[2]), B]), dump([A, B]))
    assert args == ["peer", "a=", "allowed-ips", "100.64.0.9/32"]


def test_keepalive_turned_off() -> None:
    _, args, _ = wg.plan(conf([A], keepalive=None), dump([A]))
    assert args == ["peer", "a=", "persistent-keepalive", "off"]


@pytest.mark.parametrize("change", [{"port": 51821}, {"priv": "b3RoZXI="}])
def test_a_changed_interface_syncs_everything(change: dict) -> None:
    whole, args, _ = wg.plan(conf([A], **change), dump([A]))
    assert whole and args == []


def test_a_preshared_key_syncs_everything() -> None:
    text = conf([A]).replace("Endpoint", "PresharedKey = cHNr\nEndpoint")
    assert wg.plan(text, dump([A]))[0]
