"""Running `freehold` in its own process from the lab tests, and the secrets they share.

Every module that deploys the main lab (test_deploy, test_platform, test_platform_ops) uses the
same secrets file and key in the lab's state folder, so they deploy one and the same cluster and
the secrets live as long as the lab's servers do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
LAB_SPEC = ROOT / "inventories" / "lab.yaml"


@dataclass(frozen=True)
class LabSecrets:
    path: Path
    key: bytes

    @classmethod
    def of(cls, lab: Any) -> LabSecrets:
        """The lab's test secrets (the key is made once, readable by root only)."""
        key_path = lab.plan.state_dir / "deploy-tests.key"
        if not key_path.exists():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        return cls(lab.plan.state_dir / "deploy-tests.secrets", key_path.read_bytes().strip())

    def env(self, **extra: str) -> dict[str, str]:
        out = {**os.environ, "FREEHOLD_SECRETS_KEY": self.key.decode()}
        out.pop("FREEHOLD_RELEASE_LABEL", None)
        return {**out, **extra}


def freehold(args: list[str], env: dict[str, str] | None = None, timeout: float = 300
             ) -> tuple[int, Any, float]:
    """`python -m freehold.deploy ARGS` (which ends in --json): exit code, its JSON document,
    seconds."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "freehold.deploy", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"freehold {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr.strip()[-3000:]}") from None
    return proc.returncode, doc, time.monotonic() - started


def freehold_up(secrets: LabSecrets, timeout: float = 1800) -> tuple[int, Any]:
    """`freehold up` of the main lab with the tests' secrets: exit code and its JSON document."""
    code, doc, _ = freehold(["up", "--spec", str(LAB_SPEC), "--secrets", str(secrets.path),
                             "--json"], secrets.env(), timeout)
    return code, doc
