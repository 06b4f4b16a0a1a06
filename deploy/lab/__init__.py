"""The lab: real Debian 12 servers (systemd-nspawn) in sites on this machine, with faults.

See deploy.lab.lab for the API and DESIGN.md ("The lab")."""

from freehold.deploy.lab.errors import LabError
from freehold.deploy.lab.lab import Lab

__all__ = ["Lab", "LabError"]
