"""The unit that keeps SSH connections to the pgBackRest repositories open: whom it connects
to, and its script run against a stand-in `ssh` (a real one would need the lab: the lab's
backup tests use the real connections)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from freehold.deploy.spec import load_spec
from freehold.roles.backup.config import pgbackrest_conf, repo_hosts, repo_ssh_vars
from freehold.roles.common import render, template_path

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "inventories" / "lab.yaml")
TEMPLATE = template_path(str(ROOT / "roles" / "backup" / "__init__.py"), "repo-ssh.sh.j2")


def test_postgres_servers_connect_to_the_repository_hosts_pgbackrest_names() -> None:
    """The ControlPath hashes host and user: the unit must name each repository exactly as
    pgbackrest.conf does, or pgBackRest's ssh would not find the connection."""
    repos = {r.mesh_address for r in repo_hosts(SPEC)}
    assert len(repos) == 2
    for srv in SPEC.servers:
        rv = repo_ssh_vars(SPEC, srv)
        if not srv.has("postgres"):
            assert rv is None, srv.name
            continue
        assert rv is not None
        conf = pgbackrest_conf(SPEC, srv) or ""
        named = {line.split("=", 1)[1].strip() for line in conf.splitlines()
                 if "-host=" in line and line.startswith("repo")}
        assert named == repos
        assert rv["targets"] == [f"postgres@{r.mesh_address}" for r in repo_hosts(SPEC)]


FAKE_SSH = """#!/bin/sh
# stand-in ssh: `-O check T` answers 0 when a connection to T was opened; `... T true` opens
# one, except to the host named in $DEAD; every call is logged
echo "$*" >> "$LOG"
if [ "$1" = -O ]; then
    [ -f "$STATE/$3" ] && exit 0
    exit 255
fi
shift $(($# - 2)); t=$1  # the command (true) comes last, the target before it
case $t in *"$DEAD"*) exit 255 ;; esac
touch "$STATE/$t"
"""


def test_script_opens_a_connection_once_and_retries_a_dead_host(tmp_path: Path) -> None:
    rv = repo_ssh_vars(SPEC, SPEC.server("a1"))
    assert rv is not None
    script = tmp_path / "repo-ssh"
    script.write_text(render(TEMPLATE, **{**rv, "every": 0.2}))
    script.chmod(0o755)
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    (bindir / "ssh").write_text(FAKE_SSH)
    (bindir / "ssh").chmod(0o755)
    log = tmp_path / "ssh.log"
    live, dead = (t.split("@", 1)[1] for t in rv["targets"])
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "LOG": str(log),
           "STATE": str(state), "DEAD": dead}
    proc = subprocess.Popen([str(script)], env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # three rounds at least
            if log.exists() and log.read_text().count(f"-O check postgres@{live}") >= 3:
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    calls = log.read_text().splitlines()
    opens = [c for c in calls if not c.startswith("-O")]
    # the live host: opened once, then only checked; the dead one: tried every round
    assert sum(f"postgres@{live} true" in c for c in opens) == 1, calls
    assert sum(f"postgres@{dead} true" in c for c in opens) >= 3, calls
    assert all("ConnectTimeout=5" in c for c in opens)
    assert f"no connection to postgres@{dead}" in err
    assert subprocess.run(["sh", "-n", str(script)], timeout=10).returncode == 0
