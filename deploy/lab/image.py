"""The lab's Debian 12 root file system: built once with debootstrap, cached outside the repo.

Every lab server boots from an overlay over this image, so it is read-only once built. The
mirror comes from the machine's own apt sources (deb822 `*.sources` or `sources.list`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from freehold.deploy.lab.errors import LabError
from freehold.deploy.lab.host import check_prerequisites

CACHE_ROOT = Path(os.environ.get("FREEHOLD_LAB_CACHE", "/var/cache/freehold-lab"))
SUITE = "bookworm"
# what every role needs to bootstrap fast
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "python3",
    "iproute2", "iputils-ping", "procps", "sudo", "ca-certificates", "curl", "gnupg",
    "nftables", "less", "netbase",
)
# timers and gettys an idle lab server does not need (memory, CPU on 2 cores)
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "e2scrub_reap.service", "console-getty.service", "getty@.service", "systemd-timesyncd.service",
    "systemd-networkd-wait-online.service", "man-db.timer", "dpkg-db-backup.timer",
)
MARKER = ".freehold-lab-image.json"


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """The machine's Debian apt sources (deb lines only), deb822 and one-line formats."""
    found: list[AptSource] = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    found.append(AptSource(uri, tuple(fields.get("suites", "").split()),
                                           tuple(fields.get("components", "main").split())))
    lists = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(parts) >= 3 and parts[0] == "deb":
                found.append(AptSource(parts[1], (parts[2],), tuple(parts[3:]) or ("main",)))
    return found


def debian_mirror(sources: list[AptSource]) -> str:
    """The mirror that carries the suite itself (not -security / -updates)."""
    for src in sources:
        if SUITE in src.suites:
            return src.uri
    raise LabError(f"no apt source for Debian {SUITE} in /etc/apt: add one (e.g. `deb "
                   f"http://deb.debian.org/debian {SUITE} main` to /etc/apt/sources.list)")


def image_sources(sources: list[AptSource]) -> str:
    """deb822 sources for the image: the machine's bookworm entries, same mirrors."""
    stanzas = []
    for src in sources:
        suites = [s for s in src.suites if s.startswith(SUITE)]
        if suites:
            stanzas.append(f"Types: deb\nURIs: {src.uri}\nSuites: {' '.join(suites)}\n"
                           f"Components: {' '.join(src.components)}\n"
                           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return "\n".join(stanzas)


def image_id() -> str:
    return hashlib.sha1(" ".join((SUITE, *PACKAGES, *MASKED_UNITS, "v1")).encode()).hexdigest()[:10]


def image_dir() -> Path:
    return CACHE_ROOT / "images" / f"{SUITE}-{image_id()}"


def image_ready(path: Path | None = None) -> bool:
    return ((path or image_dir()) / MARKER).exists()


def build_image(rebuild: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Build the image unless cached (or `rebuild`); return its root directory."""
    check_prerequisites(("debootstrap", "systemd-nspawn"))
    target = image_dir()
    if image_ready(target) and not rebuild:
        return target
    users = image_users(target)
    if users:
        raise LabError(f"the image is in use by {len(users)} lab server(s) ({users[0]}...): "
                       "run `freehold lab down` for those labs before --rebuild")
    sources = apt_sources()
    mirror = debian_mirror(sources)
    tmp = target.with_name(target.name + f".build-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
           SUITE, str(tmp), mirror]
    logfile = CACHE_ROOT / "image-build.log"
    with open(logfile, "w") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if log and line.startswith("I: "):
                log(line[3:].strip())
        rc = proc.wait()
    if rc != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LabError(f"debootstrap failed (exit {rc}) from {mirror}: see {logfile}")
    _configure(tmp, sources)
    (tmp / MARKER).write_text(json.dumps({
        "suite": SUITE, "mirror": mirror, "packages": PACKAGES,
        "built_at": time.time(), "build_seconds": round(time.monotonic() - start, 1)}) + "\n")
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def image_users(path: Path) -> list[str]:
    """Mount points of overlays whose lower layer is this image (running lab servers)."""
    users = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if f"lowerdir={path}," in line or f"lowerdir={path} " in line:
                users.append(line.split()[4])
    return users


def image_info() -> dict:
    path = image_dir()
    if not image_ready(path):
        return {"path": str(path), "ready": False}
    return {"path": str(path), "ready": True, **json.loads((path / MARKER).read_text())}


def _configure(root: Path, sources: list[AptSource]) -> None:
    """Make the bare debootstrap tree a lab server image (no per-server data in it)."""
    etc = root / "etc"
    # per-server identity is written at `up`: host keys, machine id, hostname
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    (etc / "machine-id").write_text("")
    (etc / "hostname").write_text("localhost\n")
    (etc / "ssh" / "sshd_config.d" / "freehold-lab.conf").write_text(
        "# freehold lab: one ed25519 host key per server, keys only\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    (etc / "systemd" / "journald.conf.d").mkdir(parents=True, exist_ok=True)
    (etc / "systemd" / "journald.conf.d" / "freehold-lab.conf").write_text(
        "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n")
    (etc / "apt" / "apt.conf.d" / "01freehold-lab").write_text(
        'APT::Install-Recommends "false";\nAcquire::Languages "none";\n'
        'Acquire::http::Pipeline-Depth "0";\n')
    sl = etc / "apt" / "sources.list"
    if sl.exists():
        sl.unlink()
    (etc / "apt" / "sources.list.d" / "debian.sources").write_text(image_sources(sources))
    for unit in MASKED_UNITS:
        (etc / "systemd" / "system" / unit).unlink(missing_ok=True)
        (etc / "systemd" / "system" / unit).symlink_to("/dev/null")
    (root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
    # apt lists and downloaded packages are not part of the image
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (root / d).glob("*"):
            if f.is_file():
                f.unlink()
