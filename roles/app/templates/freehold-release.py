#!/usr/bin/python3
"""freehold-release: switch, roll and prune app releases on this server (installed by
roles/app and roles/worker; standard library only, runs as root).

  freehold-release status                   JSON: current, previous, releases, history
  freehold-release switch ID [--keep N]     point `current` at releases/ID, prune to N
  freehold-release roll ID|previous [--unit U] [--server NAME] [--lb HOST:PORT ...]
                   [--ready URL] [--timeout S] [--drain-timeout S] [--keep N]
      Drain NAME in every load balancer (HAProxy runtime API over the mesh), wait for its
      sessions to end, switch to ID, restart U, wait until URL answers 200, put NAME back in
      service. When URL does not answer in time, the release that ran before is put back
      (restarted, checked, re-enabled) and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = "/opt/freehold"
RELEASES = f"{ROOT}/releases"
CURRENT = f"{ROOT}/current"
HISTORY = f"{ROOT}/history"
BACKEND = "app"


def log(msg: str) -> None:
    print(f"freehold-release: {msg}", flush=True)


def current() -> str | None:
    try:
        return os.path.basename(os.readlink(CURRENT).rstrip("/"))
    except OSError:
        return None


def history() -> list[str]:
    try:
        with open(HISTORY) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def installed() -> list[str]:
    try:
        names = os.listdir(RELEASES)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(f"{RELEASES}/{n}/.installed"))


def previous() -> str | None:
    cur = current()
    for rid in reversed(history()):
        if rid != cur and rid in installed():
            return rid
    return None


def in_use() -> set[str]:
    """Releases some running process executes from."""
    used = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        marker = f"{RELEASES}/"
        at = cmd.find(marker)
        if at >= 0:
            used.add(cmd[at + len(marker):].split("/", 1)[0])
    return used


def prune(keep: int) -> list[str]:
    """Remove installed releases beyond the `keep` most recent of the history (never the
    current one, the previous one, one a process runs from, or one never activated yet: a
    deploy installs before it switches)."""
    hist = history()
    recent: list[str] = []
    for rid in reversed(hist):
        if rid not in recent:
            recent.append(rid)
    keepers = set(recent[:max(keep, 2)]) | {current(), previous()} | in_use()
    removed = []
    for rid in os.listdir(RELEASES) if os.path.isdir(RELEASES) else []:
        if rid in hist and rid not in keepers and os.path.exists(f"{RELEASES}/{rid}/.installed"):
            subprocess.run(["rm", "-rf", "--one-file-system", f"{RELEASES}/{rid}"], check=True)
            removed.append(rid)
    return removed


def switch(rid: str, keep: int) -> bool:
    """Point `current` at `rid` (atomic rename); True when it changed."""
    if not os.path.exists(f"{RELEASES}/{rid}/.installed"):
        raise SystemExit(f"freehold-release: release {rid} is not installed here")
    if current() == rid:
        return False
    tmp = f"{CURRENT}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(f"releases/{rid}", tmp)
    os.replace(tmp, CURRENT)
    with open(HISTORY, "a") as f:
        f.write(rid + "\n")
    removed = prune(keep)
    log(f"current -> {rid}" + (f" (pruned {', '.join(removed)})" if removed else ""))
    return True


# ---- HAProxy runtime API --------------------------------------------------------------

def runtime(lb: str, command: str, timeout: float = 3.0) -> str:
    host, port = lb.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def sessions(lb: str, server: str) -> int | None:
    """Current sessions of `server` in the app backend of `lb` (None: not listed)."""
    out = runtime(lb, "show stat")
    lines = out.splitlines()
    if not lines:
        return None
    head = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(head, line.split(","), strict=False))
        if row.get("pxname") == BACKEND and row.get("svname") == server:
            return int(row.get("scur") or 0)
    return None


def server_status(lb: str, server: str) -> str:
    out = runtime(lb, "show stat")
    lines = out.splitlines()
    head = lines[0].lstrip("# ").split(",") if lines else []
    for line in lines[1:]:
        row = dict(zip(head, line.split(","), strict=False))
        if row.get("pxname") == BACKEND and row.get("svname") == server:
            return row.get("status", "")
    return ""


def set_state(lbs: list[str], server: str, state: str) -> list[str]:
    """Set the server's admin state on each reachable load balancer; returns those reached."""
    reached = []
    for lb in lbs:
        try:
            out = runtime(lb, f"set server {BACKEND}/{server} state {state}").strip()
        except OSError as e:
            log(f"{lb}: unreachable ({e}); skipped")
            continue
        if out:
            log(f"{lb}: {out}")
        reached.append(lb)
    return reached


def drain(lbs: list[str], server: str, timeout: float) -> list[str]:
    reached = set_state(lbs, server, "drain")
    deadline = time.monotonic() + timeout
    for lb in reached:
        while time.monotonic() < deadline:
            try:
                n = sessions(lb, server)
            except OSError:
                break
            if not n:
                break
            time.sleep(0.2)
    # a request HAProxy sent just before the drain may still be on its way in
    time.sleep(0.5)
    return reached


def wait_up(lbs: list[str], server: str, timeout: float) -> None:
    """Until each load balancer's health check sees the server UP again (bounded)."""
    deadline = time.monotonic() + timeout
    for lb in lbs:
        while time.monotonic() < deadline:
            try:
                if server_status(lb, server).startswith("UP"):
                    break
            except OSError:
                break
            time.sleep(0.3)


def ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def restart(unit: str) -> None:
    subprocess.run(["systemctl", "restart", unit], check=False, timeout=120)


def roll(args: argparse.Namespace) -> int:
    target = previous() if args.release == "previous" else args.release
    if target is None:
        log("no previous release here to go back to")
        return 1
    before = current()
    running = subprocess.run(["systemctl", "is-active", "--quiet", args.unit]).returncode == 0
    lbs = [lb for lb in args.lb if lb]
    if running and lbs and args.server:
        drain(lbs, args.server, args.drain_timeout)
    switch(target, args.keep)
    restart(args.unit)
    if ready(args.ready, args.timeout):
        if lbs and args.server:
            set_state(lbs, args.server, "ready")
            wait_up(lbs, args.server, args.timeout)
        log(f"{args.unit} serves {target}")
        return 0
    log(f"{args.unit} on {target}: {args.ready} not ready within {args.timeout:.0f} s")
    if before and before != target:
        switch(before, args.keep)
        restart(args.unit)
        ok = ready(args.ready, args.timeout)
        log(f"put {before} back ({'ready' if ok else 'NOT ready either'})")
    if lbs and args.server:
        set_state(lbs, args.server, "ready")
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(prog="freehold-release")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status")
    sw = sub.add_parser("switch")
    sw.add_argument("release")
    sw.add_argument("--keep", type=int, default=3)
    r = sub.add_parser("roll")
    r.add_argument("release")
    r.add_argument("--unit", default="freehold-app")
    r.add_argument("--server", default="")
    r.add_argument("--lb", action="append", default=[])
    r.add_argument("--ready", default="http://127.0.0.1:8000/readyz")
    r.add_argument("--timeout", type=float, default=60)
    r.add_argument("--drain-timeout", type=float, default=30)
    r.add_argument("--keep", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "status":
        print(json.dumps({"current": current(), "previous": previous(),
                          "releases": installed(), "history": history()[-10:]}))
        return 0
    if args.cmd == "switch":
        switch(args.release, args.keep)
        return 0
    return roll(args)


if __name__ == "__main__":
    sys.exit(main())
