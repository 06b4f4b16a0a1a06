"""Cluster specs: providers, sites and servers (with ranges), loaded and checked.

    from deploy.spec import load_spec, SpecError
    spec = load_spec("inventories/lab.yaml")
"""

from deploy.spec.errors import SpecError
from deploy.spec.loader import load_spec, loads_spec, parse_spec
from deploy.spec.models import (
    IMPLIED_ROLES,
    ROLES,
    ClusterSpec,
    LabSettings,
    Mesh,
    Provider,
    Server,
    Site,
)

__all__ = ["IMPLIED_ROLES", "ROLES", "ClusterSpec", "LabSettings", "Mesh", "Provider", "Server",
           "Site", "SpecError", "load_spec", "loads_spec", "parse_spec"]
