"""The lab's SSH key (authorised on every server) and host keys (pinned in its known_hosts)."""

from __future__ import annotations

from pathlib import Path

from freehold.deploy.lab.host import sh
from freehold.deploy.lab.layout import LabPlan
from freehold.deploy.spec import ClusterSpec


def ssh_dir(plan: LabPlan) -> Path:
    return plan.state_dir / "ssh"


def _keygen(path: Path, comment: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def lab_key(plan: LabPlan) -> Path:
    """The private key that logs in as root on every server of the lab."""
    key = ssh_dir(plan) / "id_ed25519"
    _keygen(key, f"freehold-lab-{plan.name}")
    return key


def host_key(plan: LabPlan, server: str) -> Path:
    """The server's ed25519 host key, made here so known_hosts is right before it boots."""
    key = ssh_dir(plan) / "host_keys" / server
    _keygen(key, f"root@{server}")
    return key


def write_known_hosts(plan: LabPlan) -> Path:
    """One line per server: its name and address with its host key (never 'accept new')."""
    lines = []
    for srv in plan.servers:
        pub = Path(f"{host_key(plan, srv.name)}.pub").read_text().split()
        lines.append(f"{srv.address},{srv.name} {pub[0]} {pub[1]}\n")
    path = ssh_dir(plan) / "known_hosts"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)
    return path


def record_in_spec(plan: LabPlan, spec: ClusterSpec) -> Path | None:
    """The lab made its servers' host keys, so it records them where every SSH path checks
    them: the spec's first known_hosts file (its lines for these servers replaced)."""
    from freehold.deploy.ssh.hostkeys import known_name, parse_keyscan, record

    if spec.path.startswith("<") or not spec.known_hosts:
        return None
    entries = []
    for srv in plan.servers:
        kind, data = Path(f"{host_key(plan, srv.name)}.pub").read_text().split()[:2]
        [(_, key)] = parse_keyscan(f"{srv.address} {kind} {data}")
        entries.append((known_name(spec.server(srv.name)), key))
    path = Path(spec.known_hosts[0])
    record(path, entries, replace=[name for name, _ in entries])
    return path


def ssh_command(plan: LabPlan, address: str, connect_timeout: int = 5) -> list[str]:
    return ["ssh", "-i", str(ssh_dir(plan) / "id_ed25519"),
            "-o", f"UserKnownHostsFile={ssh_dir(plan) / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "LogLevel=ERROR", f"root@{address}"]
