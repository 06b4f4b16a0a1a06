"""One lab server: an overlay over the image, booted by systemd-nspawn in its own namespace.

Each systemd-nspawn runs in its own cgroup (`freehold-lab/<lab>/<server>` in the systemd and
unified hierarchies), so every process of a server — nspawn, the server's systemd and all it
started — is found by reading that cgroup: `kill` SIGKILLs them all at once (power loss),
`pause` SIGSTOPs them, `stop` asks nspawn for a clean poweroff.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil

from freehold.deploy.lab.errors import LabError
from freehold.deploy.lab.host import sh
from freehold.deploy.lab.layout import APT_PROXY_PORT, LabPlan, LabServer

NSPAWN_PROPAGATE = Path("/run/systemd/nspawn")


# ---- root file system ---------------------------------------------------------------------

def root_dir(plan: LabPlan, srv: LabServer) -> Path:
    return plan.server_dir(srv.name) / "root"


def mounted_points() -> set[str]:
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            points.add(line.split()[4].replace("\\040", " "))
    return points


def mount_root(plan: LabPlan, srv: LabServer, image: Path) -> Path:
    """Mount the server's overlay (idempotent); its changes live in upper/ until `down`."""
    base = plan.server_dir(srv.name)
    root = base / "root"
    if str(root) in mounted_points():
        return root
    for d in ("upper", "work", "root"):
        (base / d).mkdir(parents=True, exist_ok=True)
    sh(["mount", "-t", "overlay", "overlay", "-o",
        f"lowerdir={image},upperdir={base / 'upper'},workdir={base / 'work'}", str(root)])
    return root


def _image_lock(root: Path) -> Path | None:
    """The lock file nspawn keeps for a root directory (left behind when nspawn is killed)."""
    with contextlib.suppress(OSError):
        st = root.stat()
        return NSPAWN_PROPAGATE / "locks" / f"inode-{st.st_dev}:{st.st_ino}"
    return None


def unmount_root(plan: LabPlan, srv: LabServer) -> None:
    root = root_dir(plan, srv)
    if str(root) in mounted_points():
        lock = _image_lock(root)
        if lock is not None:
            lock.unlink(missing_ok=True)
    for _ in range(5):
        if str(root) not in mounted_points():
            break
        proc = sh(["umount", str(root)], check=False)
        if proc.returncode != 0:
            time.sleep(0.2)
    else:
        sh(["umount", "--lazy", str(root)], check=False)
    shutil.rmtree(plan.server_dir(srv.name), ignore_errors=True)


def write_identity(plan: LabPlan, srv: LabServer, root: Path, authorized_key: str,
                   host_key_dir: Path) -> None:
    """Hostname, machine id, host key, the lab's SSH key, resolver and apt proxy."""
    etc = root / "etc"
    (etc / "hostname").write_text(f"{srv.name}\n")
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{srv.name}\n"
                               f"{srv.address}\t{srv.name}\n::1\tlocalhost ip6-localhost\n")
    mid = etc / "machine-id"
    if not mid.read_text().strip():
        mid.write_text(uuid.uuid4().hex + "\n")
    for suffix in ("", ".pub"):
        src = host_key_dir / f"{srv.name}{suffix}"
        dst = etc / "ssh" / f"ssh_host_ed25519_key{suffix}"
        shutil.copyfile(src, dst)
        dst.chmod(0o600 if not suffix else 0o644)
    ssh = root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(authorized_key.strip() + "\n")
    (ssh / "authorized_keys").chmod(0o600)
    resolv = etc / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.write_text("".join(line + "\n" for line in Path("/etc/resolv.conf").read_text()
                              .splitlines() if line.startswith(("nameserver", "search"))))
    (etc / "apt" / "apt.conf.d" / "02freehold-lab-proxy").write_text(
        "# the lab's shared package cache (one download per machine)\n"
        f'Acquire::http::Proxy "http://{plan.host_transit}:{APT_PROXY_PORT}";\n')


# ---- processes ----------------------------------------------------------------------------

def cgroup_pids(plan: LabPlan, srv: LabServer) -> list[int]:
    """Every process of the server (its nspawn included), from its cgroup tree."""
    pids: set[int] = set()
    for top in plan.cgroup_dirs(srv.name):
        if not top.exists():
            continue
        for dirpath, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in
                                Path(dirpath, "cgroup.procs").read_text().split())
    return sorted(pids)


def nspawn_pid(plan: LabPlan, srv: LabServer) -> int | None:
    for pid in cgroup_pids(plan, srv):
        with contextlib.suppress(psutil.Error):
            cmd = psutil.Process(pid).cmdline()
            if cmd and cmd[0].endswith("systemd-nspawn") and f"--machine={srv.machine}" in cmd:
                return pid
    return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def boot(plan: LabPlan, srv: LabServer, root: Path) -> int:
    """Start systemd-nspawn --boot for the server (in its own cgroup); return nspawn's pid."""
    running = nspawn_pid(plan, srv)
    if running:
        return running
    _clean_cgroups(plan, srv)
    dirs = plan.cgroup_dirs(srv.name)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    log = open(plan.server_dir(srv.name) / "console.log", "ab")  # noqa: SIM115

    def enter_cgroup() -> None:
        for d in dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    cmd = ["systemd-nspawn", "--quiet", "-D", str(root), "--boot", "--register=no",
           "--keep-unit", f"--machine={srv.machine}", f"--hostname={srv.name}",
           f"--network-namespace-path=/run/netns/{srv.netns}", "--bind=/dev/net/tun",
           # the server's own firewall (nftables) and WireGuard mesh need CAP_NET_ADMIN; it
           # acts on the server's network namespace only (added for issue 5's roles)
           "--capability=CAP_NET_ADMIN",
           "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=enter_cgroup, close_fds=True)
    finally:
        log.close()
    return proc.pid


def kill(plan: LabPlan, srv: LabServer, timeout: float = 15.0) -> None:
    """Power loss: SIGKILL every process of the server at once (and again until none is left)."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        pids = cgroup_pids(plan, srv)
        if not pids:
            break
        seen.update(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
        time.sleep(0.05)
    else:
        raise LabError(f"{srv.name}: processes {cgroup_pids(plan, srv)} survived SIGKILL")
    for pid in seen:        # our own children (nspawn started by this process) leave zombies
        _reap(pid)
    _clean_cgroups(plan, srv)


def stop(plan: LabPlan, srv: LabServer, timeout: float = 40.0) -> bool:
    """Clean poweroff (SIGTERM to nspawn makes the server's systemd shut down); True when clean,
    False when it had to be killed after `timeout` seconds."""
    pid = nspawn_pid(plan, srv)
    if pid is None:
        kill(plan, srv)
        return True
    resume(plan, srv)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    clean = not psutil.pid_exists(pid)
    kill(plan, srv)
    return clean


def _signal_all(plan: LabPlan, srv: LabServer, sig: int) -> None:
    own = nspawn_pid(plan, srv)
    for _ in range(3):      # again, for anything forked meanwhile
        for pid in cgroup_pids(plan, srv):
            if pid != own:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)


def pause(plan: LabPlan, srv: LabServer) -> None:
    _signal_all(plan, srv, signal.SIGSTOP)


def resume(plan: LabPlan, srv: LabServer) -> None:
    _signal_all(plan, srv, signal.SIGCONT)


def state(plan: LabPlan, srv: LabServer) -> str:
    """running, paused (all its processes stopped) or stopped."""
    own = nspawn_pid(plan, srv)
    if own is None:
        return "stopped"
    inner = [p for p in cgroup_pids(plan, srv) if p != own]
    stopped = 0
    for pid in inner:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                stopped += 1
    return "paused" if inner and stopped == len(inner) else "running"


def started_at(plan: LabPlan, srv: LabServer) -> float | None:
    pid = nspawn_pid(plan, srv)
    if pid is None:
        return None
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).create_time()
    return None


def memory(plan: LabPlan, srv: LabServer) -> dict[str, int]:
    """Proportional (PSS) and resident memory of the server's processes, nspawn excluded."""
    own = nspawn_pid(plan, srv)
    pss = rss = 0
    for pid in cgroup_pids(plan, srv):
        if pid == own:
            continue
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            pss += info.pss
            rss += info.rss
    return {"pss": pss, "rss": rss}


def _clean_cgroups(plan: LabPlan, srv: LabServer) -> None:
    """Remove the server's (empty) cgroup tree, deepest first."""
    for top in plan.cgroup_dirs(srv.name):
        if not top.exists():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def remove_lab_cgroups(plan: LabPlan) -> None:
    for top in plan.cgroup_dirs():
        with contextlib.suppress(OSError):
            top.rmdir()
        with contextlib.suppress(OSError):
            top.parent.rmdir()      # freehold-lab/, when no other lab uses it


def clean_nspawn_leftovers(srv: LabServer) -> None:
    """nspawn's per-machine directories under /run/systemd/nspawn (left behind by SIGKILL)."""
    for sub in ("propagate", "unix-export", "incoming"):
        path = NSPAWN_PROPAGATE / sub / srv.machine
        if str(path) in mounted_points():
            sh(["umount", "--lazy", str(path)], check=False)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
