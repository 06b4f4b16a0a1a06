"""The roles' facts (roles/<role>/facts.py) as pyinfra tests its own: each fact's command for
its arguments, and what it makes of recorded output. A fact only reads: no command here loads,
creates or waits for anything."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from pyinfra.api import FactBase

from freehold.roles.backup.facts import BackupInfo, PatroniDynamicConfig, PublicKeyOf
from freehold.roles.common.facts import InContainer, UnitCommandLine
from freehold.roles.lb.facts import InterfaceOf, OpenFilesLimit
from freehold.roles.media.facts import HttpStatus
from freehold.roles.mesh.facts import KernelWireguard
from freehold.roles.postgres.facts import DatabaseExists, PatroniRole, RoleExists
from freehold.roles.redis.facts import ClusterState

# (fact, arguments, recorded output lines, the fact's value)
CASES: list[tuple[type[FactBase[Any]], dict[str, Any], list[str], Any]] = [
    (PatroniRole, {"mesh_address": "10.77.0.4"}, ["leader"], "leader"),
    (PatroniRole, {"mesh_address": "10.77.0.4"}, ["replica"], "replica"),
    (PatroniRole, {"mesh_address": "10.77.0.4"}, ["none"], "none"),
    (PatroniRole, {"mesh_address": "10.77.0.4"}, [], "none"),
    (DatabaseExists, {"database": "freehold"}, ["1"], True),
    (DatabaseExists, {"database": "freehold"}, ["0"], False),
    (DatabaseExists, {"database": "freehold"}, [], False),
    (RoleExists, {"role": "prometheus"}, ["1"], True),
    (RoleExists, {"role": "prometheus"}, ["0"], False),
    (RoleExists, {"role": "prometheus"}, [], False),
    (HttpStatus, {"url": "http://10.77.0.7:8888/buckets/media/"}, ["200"], 200),
    (HttpStatus, {"url": "http://10.77.0.7:8888/buckets/media/"}, ["404"], 404),
    (HttpStatus, {"url": "http://10.77.0.7:8888/"}, ["000"], 0),
    (HttpStatus, {"url": "http://10.77.0.7:8888/"}, [""], 0),
    (KernelWireguard, {}, ["kernel"], True),
    (KernelWireguard, {}, ["userspace"], False),
    (InContainer, {}, ["yes"], True),
    (InContainer, {}, ["no"], False),
    (UnitCommandLine, {"unit": "freehold-app.service"},
     ["/opt/freehold/releases/0.1.0-3f2a9c1b7d4e/venv/bin/python -m freehold.app.serve "
      "--port 8000 "],
     "/opt/freehold/releases/0.1.0-3f2a9c1b7d4e/venv/bin/python -m freehold.app.serve --port 8000"),
    (UnitCommandLine, {"unit": "freehold-app.service"}, [], ""),
    (PublicKeyOf, {"path": "/var/lib/postgresql/.ssh/id_ed25519"},
     ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4 postgres@b1"],
     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4"),
    (PublicKeyOf, {"path": "/var/lib/postgresql/.ssh/id_ed25519"}, [], ""),
    (PatroniDynamicConfig, {"patronictl": "patronictl"}, [], {}),
    (BackupInfo, {"as_user": "runuser -u postgres --", "stanza": "freehold"}, [], []),
    (HttpStatus, {"url": "http://10.77.0.7:8888/"}, [], 0),
    (KernelWireguard, {}, [], False),
    (InContainer, {}, [], False),
    (InterfaceOf, {"address": "198.18.1.11"}, [], ""),
    (ClusterState, {"script": "s.py", "layout": "l.json"}, [], ""),
    (PatroniDynamicConfig, {"patronictl": "patronictl -c /etc/patroni/config.yml"},
     ["loop_wait: 10", "postgresql:", "  parameters:",
      "    archive_command: pgbackrest --stanza=freehold archive-push %p"],
     {"loop_wait": 10, "postgresql": {"parameters": {
         "archive_command": "pgbackrest --stanza=freehold archive-push %p"}}}),
    (PatroniDynamicConfig, {"patronictl": "patronictl"}, ["Error: no leader: [x"], {}),
    (BackupInfo, {"as_user": "runuser -u postgres --", "stanza": "freehold"},
     ['[{"name":"freehold","backup":[{"label":"20261206-010000F"}]}]'],
     [{"name": "freehold", "backup": [{"label": "20261206-010000F"}]}]),
    (BackupInfo, {"as_user": "runuser -u postgres --", "stanza": "freehold"}, ["[]"], []),
    (BackupInfo, {"as_user": "runuser -u postgres --", "stanza": "freehold"}, ["oops"], []),
    (OpenFilesLimit, {}, ["1048576"], 1048576),
    (OpenFilesLimit, {}, ["unlimited"], None),
    (InterfaceOf, {"address": "198.18.1.10"}, ["host0@if12"], "host0"),
    (ClusterState, {"script": "/usr/local/lib/freehold/redis_cluster.py",
                    "layout": "/etc/redis/freehold-layout.json"}, ["ok"], "ok"),
    (ClusterState, {"script": "s.py", "layout": "l.json"},
     ["slots 0-5460: master b2, want a2"], "slots 0-5460: master b2, want a2"),
]
# what would change a server or wait: none of it belongs in a fact
SIDE_EFFECTS = ("modprobe ", "sleep", "while ", "until ", "seq ", " -X POST", "mkdir", "rm ",
                "systemctl start", "systemctl restart", "insmod")


@pytest.mark.parametrize(("fact", "args", "output", "want"), CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_fact_reads_recorded_output(fact: type[FactBase[Any]], args: dict[str, Any],
                                    output: list[str], want: Any) -> None:
    assert fact().process(output) == want
    if not any(line.strip() for line in output):  # pyinfra answers default() without process()
        assert fact().default() == want


@pytest.mark.parametrize("fact", sorted({c[0] for c in CASES}, key=lambda f: f.__name__))
def test_fact_commands_only_read(fact: type[FactBase[Any]]) -> None:
    args = next(c[1] for c in CASES if c[0] is fact)
    command = fact().command(**args)
    shlex.split(command)  # well formed
    assert not [s for s in SIDE_EFFECTS if s in command], command


def test_fact_commands_carry_their_arguments() -> None:
    assert "http://10.77.0.4:8008/primary" in PatroniRole().command("10.77.0.4")
    assert "datname = 'freehold'" in DatabaseExists().command("freehold")
    assert shlex.split(HttpStatus().command("http://h:1/a b/"))[-3] == "http://h:1/a b/"
    assert "modinfo wireguard" in KernelWireguard().command()
