"""Cluster specs: providers, sites and servers (with ranges), loaded and checked.

    from freehold.deploy.spec import load_spec, SpecError
    spec = load_spec("inventories/lab.yaml")   # SpecError(problems) lists every problem

The YAML (see inventories/lab.yaml; unknown fields are errors):

    name: prod
    providers: [{name: hetzner, kind: rented}]          # kind: owned | rented | cloud
    sites:
      - {name: fsn, provider: hetzner, latency_ms: {hel: 24}, network: 10.1.0.0/16}
    defaults: {ssh_user: root, ssh_port: 22, ssh_key: ~/.ssh/id, cores: 32, ram_gib: 128,
               disk_gib: 3840, roles: [], labels: {}}
    roles:                       # per-role settings, keyed by role
      postgres: {primary_site: fsn, standby_site: hel}
      redis: {replicas: 1, masters: 12}
      media: {masters: 3, copies: 2}
    mesh: {network: 100.96.0.0/16, port: 51820}
    lab: {network: 198.18.0.0/15}                       # only for lab specs
    known_hosts: [prod.known_hosts, ~/.ssh/known_hosts] # host keys (this is the default for
                                                        # prod.yaml); `freehold trust` writes
                                                        # the first
    servers:
      - name: "app-[001:120]"                           # a range: 120 servers
        site: fsn
        address: "10.1.1.[10:129]"                      # public = private; or address_start
        public_address: ...                             # or public_/private_address(_start)
        roles: [app, worker]
        labels: {rack: r12}

Mesh addresses are derived per site unless given; `base` and `mesh` roles are implied.
Placement rules and the survival analysis live in `deploy.spec.placement`.
"""

from freehold.deploy.spec.errors import SpecError
from freehold.deploy.spec.loader import load_spec, loads_spec, parse_spec
from freehold.deploy.spec.models import (
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
