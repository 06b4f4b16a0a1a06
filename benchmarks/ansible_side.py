"""Ansible beside Freehold (issue 20): ansible-core from PyPI in the benchmark's own virtualenv,
an inventory of a lab spec with its host keys checked, and benchmarks/ansible/base.yml run in
check mode, timed (wall, CPU-seconds of ansible-playbook and every process it reaped).

The variables of each host are rendered with roles/base's own templates and config functions, so
the playbook holds the servers to the same bytes as `freehold deploy --roles base`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "benchmarks" / "ansible" / "base.yml"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "freehold" / "scale-bench"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)", re.M)


def ensure_ansible(cache: Path = CACHE, spec: str = "ansible-core") -> tuple[Path, str]:
    """A virtualenv of its own under `cache` with ansible-core from PyPI (made once); returns
    its bin folder and `ansible-playbook --version`'s first line."""
    venv = cache / "ansible-venv"
    bin_dir = venv / "bin"
    if not (bin_dir / "ansible-playbook").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(bin_dir / "pip"), "install", "-q", spec], check=True, timeout=900)
    out = subprocess.run([str(bin_dir / "ansible-playbook"), "--version"], capture_output=True,
                         text=True, timeout=120, check=True)
    return bin_dir, out.stdout.splitlines()[0].strip()


def base_host_vars(spec: Any, server: Any) -> dict[str, Any]:
    """What roles/base holds one server to, as the playbook's variables."""
    import freehold.roles.base as base
    from freehold.roles.base.config import admins, firewall_vars, sysctl_values
    from freehold.roles.common import render, template_path

    def t(name: str, **data: Any) -> str:
        return render(template_path(base.__file__, name), **data)

    people = admins(spec)
    files = []
    if people:
        files.append({"path": "/etc/sudoers.d/freehold-admins", "content": t("sudoers.j2"),
                      "mode": "0440"})
    files += [
        {"path": "/etc/ssh/sshd_config.d/10-freehold.conf", "content": t("sshd.conf.j2"),
         "mode": "0644", "notify": ["check sshd"]},
        {"path": "/etc/nftables.conf", "content": t("nftables.conf.j2",
                                                    **firewall_vars(spec, server)),
         "mode": "0755", "notify": ["check nftables"]},
        {"path": "/etc/chrony/conf.d/freehold.conf", "content": t("chrony.conf.j2"),
         "mode": "0644", "notify": ["restart chrony"]},
        {"path": "/etc/sysctl.d/60-freehold.conf",
         "content": t("sysctl.conf.j2", values=sysctl_values(server)), "mode": "0644",
         "notify": ["apply sysctl"]},
        {"path": "/etc/apt/apt.conf.d/20auto-upgrades", "content": t("auto-upgrades.j2"),
         "mode": "0644"},
        {"path": "/etc/apt/apt.conf.d/52freehold-unattended",
         "content": t("unattended-upgrades.j2"), "mode": "0644"},
        {"path": "/etc/systemd/journald.conf.d/60-freehold.conf", "content": t("journald.conf.j2"),
         "mode": "0644", "notify": ["restart journald"]},
    ]
    return {
        "ansible_host": server.public_address,
        "base_packages": list(base.PACKAGES),
        "base_files": files,
        "admins": [{"name": p["name"], "authorized_keys": "\n".join(p["ssh_keys"]) + "\n"}
                   for p in people],
    }


def write_inventory(spec: Any, key: Path, known_hosts: Path, folder: Path,
                    forks: int, in_container: bool = True) -> Path:
    """inventory.yml, host_vars/ and ansible.cfg under `folder`; returns the config's path.
    Host keys are checked against `known_hosts` (StrictHostKeyChecking=yes)."""
    folder.mkdir(parents=True, exist_ok=True)
    host_vars = folder / "host_vars"
    host_vars.mkdir(exist_ok=True)
    for server in spec.servers:
        (host_vars / f"{server.name}.yml").write_text(
            yaml.safe_dump(base_host_vars(spec, server), sort_keys=False, width=200))
    inventory = {"all": {
        "hosts": {s.name: None for s in spec.servers},
        "vars": {"ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3",
                 "ansible_ssh_private_key_file": str(key), "in_container": in_container,
                 "ansible_ssh_common_args": (f"-o UserKnownHostsFile={known_hosts} "
                                             "-o GlobalKnownHostsFile=/dev/null "
                                             "-o StrictHostKeyChecking=yes")}}}
    (folder / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    cfg = folder / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"inventory = {folder / 'inventory.yml'}\n"
        f"forks = {forks}\n"
        "host_key_checking = True\n"
        "interpreter_python = /usr/bin/python3\n"
        "retry_files_enabled = False\n"
        "timeout = 30\n"
        f"local_tmp = {folder / 'tmp'}\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        f"control_path_dir = {folder / 'cp'}\n")
    return cfg


def run_check(bin_dir: Path, cfg: Path, playbook: Path = PLAYBOOK,
              timeout: float = 3600.0) -> dict[str, Any]:
    """`ansible-playbook --check` of the playbook: wall seconds, CPU-seconds (ansible-playbook
    and the processes it reaped: its forks and their ssh clients), the recap per host summed."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "PYTHONWARNINGS": "ignore"}
    log = cfg.with_name(f"check-{time.time_ns()}.log")
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([str(bin_dir / "ansible-playbook"), "--check", str(playbook)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cfg.parent,
                                start_new_session=True)  # its forks die with it (killpg)
        code, cpu = None, 0.0
        try:
            while code is None:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    code = os.waitstatus_to_exitcode(status)
                    proc.returncode = code
                    cpu = ru.ru_utime + ru.ru_stime
                elif time.monotonic() - started > timeout:
                    raise TimeoutError(f"ansible-playbook --check still running after "
                                       f"{timeout:.0f} s")
                else:
                    time.sleep(0.2)
        finally:
            if proc.returncode is None:  # the playbook and its forks: a timeout left the forks
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    wall = time.monotonic() - started
    text = log.read_text()
    rows = RECAP.findall(text)
    totals = {k: sum(int(r[i]) for r in rows) for i, k in
              enumerate(("ok", "changed", "unreachable", "failed", "skipped"), start=1)}
    changed_hosts = sorted(r[0] for r in rows if int(r[2]))
    return {"exit_code": code, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "hosts": len(rows), **totals, "changed_hosts": changed_hosts[:20],
            "log": str(log), "tail": "" if code == 0 else text.strip()[-1500:]}
