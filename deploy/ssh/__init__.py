"""SSH to a spec's servers: settings, host-key policy and the connections (Fabric, pyinfra).

    from freehold.deploy.ssh import settings_for, connection
    ssh = settings_for(spec_path, spec)       # the spec's known_hosts files (see below)
    with connection(server, ssh) as conn:     # refuses an unknown or changed host key
        conn.run("hostname")

Host keys are checked on every path, never trusted on first use: the spec's `known_hosts`
(default `<spec stem>.known_hosts` beside the spec, then `~/.ssh/known_hosts`; the first file
naming a server decides) holds them; `freehold trust SPEC` records them explicitly, and the lab
records the keys it made for its servers. A refusal is one line (`HostKeyError`).
"""

from freehold.deploy.ssh.connection import (
    CheckedConnection,
    SSHSettings,
    connection,
    pyinfra_data,
    refused_keys,
    settings_for,
)
from freehold.deploy.ssh.hostkeys import (
    ChangedHostKey,
    HostKeyError,
    KnownHosts,
    UnknownHostKey,
    describe,
    known_name,
    presented_key,
    record,
)

__all__ = ["ChangedHostKey", "CheckedConnection", "HostKeyError", "KnownHosts", "SSHSettings",
           "UnknownHostKey", "connection", "describe", "known_name", "presented_key",
           "pyinfra_data", "record", "refused_keys", "settings_for"]
