"""The pgBackRest SSH client config, as OpenSSH itself reads it (`ssh -G`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from freehold.deploy.spec import load_spec
from freehold.roles.backup.config import ssh_client_config

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_ssh_reads_the_multiplexed_keepalive_config(tmp_path: Path) -> None:
    ssh = shutil.which("ssh")
    assert ssh, "openssh-client is installed by make setup"
    cfg = tmp_path / "config"
    cfg.write_text(ssh_client_config(load_spec(ROOT / "inventories" / "lab.yaml")))
    r = subprocess.run([ssh, "-G", "-F", str(cfg), "postgres@100.96.64.3"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    got = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    assert got["controlmaster"] == "auto"
    assert got["controlpersist"] == "yes"  # kept while its peer answers, not for a while
    # in the user's own .ssh (mode 700), named by a hash of the peer (%C: 40 hex digits)
    path = Path(got["controlpath"])
    assert path.parent == Path.home() / ".ssh" and len(path.name) == len("cm-") + 40
    # a dead peer under a kept connection is found within 6 s, a new one waits 10 s at most
    assert int(got["serveraliveinterval"]) * int(got["serveralivecountmax"]) <= 6
    assert got["connecttimeout"] == "10"
    assert got["batchmode"] == "yes"
