#!/usr/bin/python3
"""Apply a WireGuard config's peers to the running interface, touching only what differs.

    wg_sync.py wg0            # reads `wg-quick strip wg0` and `wg show wg0 dump`

Managed by freehold (roles/mesh): the mesh unit's reload. `wg syncconf` re-sets every peer's
allowed IPs, and wireguard-go applies that as "remove all, then add each": a packet to an
existing peer in between has no route and is dropped. Here a peer that did not change is not
touched; new and changed peers are set in one `wg set` call (allowed IPs only when they
differ), peers gone from the config are removed. A changed private key or port (the
interface itself) falls back to `wg syncconf`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

FIELDS = ("PublicKey", "PresharedKey", "AllowedIPs", "Endpoint", "PersistentKeepalive")


def parse_conf(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(interface settings, {public key: peer settings}) from a stripped config."""
    iface: dict[str, str] = {}
    peers: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower() == "[interface]":
            section = iface
        elif line.lower() == "[peer]":
            section = {}
            peers[str(len(peers))] = section
        elif "=" in line and section is not None:
            key, value = (x.strip() for x in line.split("=", 1))
            section[key] = value
    return iface, {p["PublicKey"]: p for p in peers.values() if p.get("PublicKey")}


def parse_dump(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(interface, {public key: peer}) from `wg show IF dump`."""
    lines = [ln.split("\t") for ln in text.splitlines() if ln.strip()]
    if not lines:
        return {}, {}
    first = lines[0]
    iface = {"PrivateKey": first[0], "ListenPort": first[2] if len(first) > 2 else ""}
    peers = {}
    for cols in lines[1:]:
        if len(cols) < 8:
            continue
        peers[cols[0]] = {"PresharedKey": "" if cols[1] == "(none)" else cols[1],
                          "Endpoint": "" if cols[2] == "(none)" else cols[2],
                          "AllowedIPs": cols[3] if cols[3] != "(none)" else "",
                          "PersistentKeepalive": "" if cols[7] == "off" else cols[7]}
    return iface, peers


def ip_set(value: str) -> set[str]:
    return {x.strip() for x in value.split(",") if x.strip()}


def plan(conf_text: str, dump_text: str) -> tuple[bool, list[str], dict[str, int]]:
    """(sync everything instead, `wg set` arguments after the interface name, counts). The
    interface's own key or port changed, or a peer has a preshared key (the mesh uses none:
    `wg set` reads one only from a file): sync everything with `wg syncconf`."""
    want_if, want = parse_conf(conf_text)
    have_if, have = parse_dump(dump_text)
    if (want_if.get("PrivateKey", "") != have_if.get("PrivateKey", "")
            or want_if.get("ListenPort", "") != have_if.get("ListenPort", "")):
        return True, [], {}
    args: list[str] = []
    counts = {"added": 0, "changed": 0, "removed": 0, "kept": 0}
    for key, peer in want.items():
        if peer.get("PresharedKey"):
            return True, [], {}
        now = have.get(key)
        clause: list[str] = []
        if now is None or ip_set(now["AllowedIPs"]) != ip_set(peer.get("AllowedIPs", "")):
            clause += ["allowed-ips", ",".join(sorted(ip_set(peer.get("AllowedIPs", ""))))]
        if peer.get("Endpoint") and (now is None or now["Endpoint"] != peer["Endpoint"]):
            clause += ["endpoint", peer["Endpoint"]]
        keep = peer.get("PersistentKeepalive", "") or ""
        if keep in ("0", "off"):
            keep = ""
        if (now is None and keep) or (now is not None and now["PersistentKeepalive"] != keep):
            clause += ["persistent-keepalive", keep or "off"]
        if now is None:
            counts["added"] += 1
            args += ["peer", key, *clause]
        elif clause:
            counts["changed"] += 1
            args += ["peer", key, *clause]
        else:
            counts["kept"] += 1
    for key in have:
        if key not in want:
            counts["removed"] += 1
            args += ["peer", key, "remove"]
    return False, args, counts


def run(cmd: list[str], stdin: str | None = None) -> str:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True,
                          timeout=120).stdout


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].replace("-", "").replace("_", "").isalnum():
        print("usage: wg_sync.py INTERFACE", file=sys.stderr)
        return 2
    iface = sys.argv[1]
    conf = run(["wg-quick", "strip", iface])
    whole, args, counts = plan(conf, run(["wg", "show", iface, "dump"]))
    if whole:
        with tempfile.NamedTemporaryFile("w", prefix="wg-sync-", suffix=".conf") as f:
            f.write(conf)
            f.flush()
            run(["wg", "syncconf", iface, f.name])
        print(f"{iface}: interface settings changed: wg syncconf")
        return 0
    if args:
        run(["wg", "set", iface, *args])
    print(f"{iface}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
