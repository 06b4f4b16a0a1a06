"""Files written whole or not at all: the bytes go to a temporary file beside the target
(created with the target's mode, so a secret is never readable by others, even for a moment),
are fsynced, then renamed over it. A crash leaves the old file or the new one, never half.

Used for the secrets, the migration state, known_hosts files and the lab's TLS key; it sits with
the spec and the secrets at the bottom of the layers (tests/unit/test_layers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str, mode: int = 0o600) -> None:
    write_bytes(path, text.encode(), mode)


def write_json(path: Path, doc: Any, mode: int = 0o600) -> None:
    write_text(path, json.dumps(doc, indent=1, sort_keys=True, default=str), mode)
