"""Pure config for roles/backup: pgBackRest with two repositories, each on a backup server of
its own site (SSH repository hosts; the first outside the PostgreSQL primary's site, the second
in yet another site, of another provider when there is one), WAL archiving to both through
Patroni's dynamic config (asynchronous, so one unreachable repository does not hold the other
back), a daily full backup into each, and the scratch place restore drills use."""

from __future__ import annotations

import base64
import hashlib
import shlex
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import postgres_primary_site
from freehold.roles.ports import RESTORE_DRILL_PORT as DRILL_PORT
from freehold.roles.postgres.config import DATA_DIR, PG_PORT

STANZA = "freehold"
REPO_PATH = "/var/lib/pgbackrest"
SPOOL_PATH = "/var/spool/pgbackrest"  # archive-async's queue on the PostgreSQL servers
CONFIG = "/etc/pgbackrest/pgbackrest.conf"
DRILL_CONFIG = "/etc/pgbackrest/drill.conf"
DRILL_DIR = "/var/lib/freehold-drill"
DRILL_DATA = f"{DRILL_DIR}/data"

OS_USER = "postgres"          # runs pgBackRest everywhere, owns the repository
SSH_DIR = "/var/lib/postgresql/.ssh"
FULL_UNIT = "freehold-backup-full"
ARCHIVE_COMMAND = f"pgbackrest --stanza={STANZA} archive-push %p"
# A promoted standby takes as its new timeline one past the newest timeline history it can
# find. Without a restore_command it looks only in its own pg_wal, so a member that never
# streamed an earlier promotion's history reuses that timeline's id, and its WAL then collides
# in the archive: pgBackRest `ERROR: [045] ... already exists ... with a different checksum`,
# archiving stopped (Patroni issue #890; seen in the lab's back-to-back drills). So standbys ask
# the archive for timeline history files, and for nothing else: each archive-get over SSH to
# both repositories takes 1.3-2 s on the lab, a standby whose stream broke asks for the next
# segment every cycle, and a restarted one replayed segments from the archive (~2 s each)
# before it streamed again, so it was late to become the synchronous standby
# (sync-standby-kill: 26.9 s of blocked writes with segments fetched, 10.4 s without).
# Segments come by streaming: Patroni keeps a replication slot per member on the primary.
# The command is a script of the backup role (templates/restore-history.sh.j2): a history the
# member already has in pg_wal is taken from there (PostgreSQL itself falls back to it; a
# timeline's history never changes), one it lacks is asked of every repository at once. A
# promotion asks twice for its new timeline's history, found nowhere: one ask per repository
# in turn took 0.45 s idle and ~1 s on the loaded lab each (rolling-restart drill: 2.5 s of a
# switchover's 4.9 s write pause). History files never go through the async queue.
RESTORE_SCRIPT = "/usr/local/bin/freehold-restore-history"
RESTORE_COMMAND = f"{RESTORE_SCRIPT} %f %p"


def restore_script_vars(spec: ClusterSpec) -> dict[str, Any]:
    return {"path": RESTORE_SCRIPT, "stanza": STANZA,
            "repos": " ".join(str(i) for i in range(1, len(repo_hosts(spec)) + 1))}


def dynamic_archiving() -> dict[str, str]:
    """What the backup role keeps in Patroni's dynamic config, by dotted path (as
    `patronictl edit-config -s` takes it): every member archives and restores the same way,
    whichever is primary. Patroni writes recovery_conf on standbys only (PostgreSQL 15 reloads
    restore_command, no restart)."""
    return {"postgresql.parameters.archive_command": ARCHIVE_COMMAND,
            "postgresql.recovery_conf.restore_command": RESTORE_COMMAND}


def dotted(doc: dict[str, Any], path: str) -> Any:
    """`doc`'s value at a dotted path, None when any part is missing."""
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)  # type: ignore[assignment]
    return doc


class BackupConfigError(Exception):
    pass


def pg_servers(spec: ClusterSpec) -> list[Server]:
    return spec.servers_with_role("postgres")


def backup_servers(spec: ClusterSpec) -> list[Server]:
    return spec.servers_with_role("backup")


def repo_host(spec: ClusterSpec) -> Server:
    """`roles.backup.repo_host` when set, else the first backup server outside the PostgreSQL
    primary's site (a site lost with its primary keeps its backups elsewhere)."""
    servers = backup_servers(spec)
    if not servers:
        raise BackupConfigError(f"{spec.path}: no server has the role backup — add it to a "
                                "server in a site other than the PostgreSQL primary's")
    wanted = spec.role_settings("backup").get("repo_host")
    if wanted:
        for s in servers:
            if s.name == wanted:
                return s
        raise BackupConfigError(f"{spec.path}: roles.backup.repo_host {wanted!r} is not a "
                                f"backup server (backup servers: "
                                f"{', '.join(s.name for s in servers)})")
    primary_site = postgres_primary_site(spec)
    away = [s for s in servers if s.site != primary_site]
    return (away or servers)[0]


def repo_hosts(spec: ClusterSpec) -> list[Server]:
    """The repository hosts, in pgBackRest's order (repo1, repo2): repo_host, then — unless
    `roles.backup.repositories` is 1 — the backup server that survives what repo1 does not:
    another site (one site's loss never stops archiving), of another provider when there is
    one, outside the primary's site when it can be. A spec whose backup servers are all in one
    site gets one repository."""
    first = repo_host(spec)
    if int(spec.role_settings("backup").get("repositories") or 2) < 2:
        return [first]
    primary_site = postgres_primary_site(spec)
    others = [s for s in backup_servers(spec) if s.site != first.site]
    if not others:
        return [first]
    others.sort(key=lambda s: (s.provider == first.provider, s.site == primary_site))
    return [first, others[0]]


def repo_index(spec: ClusterSpec, me: Server) -> int | None:
    """1 or 2 when `me` holds that repository, else None."""
    for i, s in enumerate(repo_hosts(spec), start=1):
        if s.name == me.name:
            return i
    return None


def drill_host(spec: ClusterSpec) -> Server:
    """Where restore drills run: another backup server than the repository's when there is
    one (a restore across the network, as after losing a site), else the repository host."""
    repo = repo_host(spec)
    others = [s for s in backup_servers(spec) if s.name != repo.name]
    return others[0] if others else repo


def settings(spec: ClusterSpec) -> dict[str, Any]:
    s = spec.role_settings("backup")
    return {"retention_full": int(s.get("retention_full", 2)),
            "full_at": str(s.get("full_at", "*-*-* 02:30:00")),
            # the second repository's full backup, 12 h apart: two backups of one cluster at
            # once conflict on the database host's pgBackRest lock
            "full_at_second": str(s.get("full_at_second", "*-*-* 14:30:00")),
            "compress": str(s.get("compress", "zst"))}


def _ini(sections: dict[str, dict[str, Any]], note: str) -> str:
    out = [f"# Managed by freehold (roles/backup): {note}"]
    for name, values in sections.items():
        out.append(f"\n[{name}]")
        out += [f"{k}={v}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def _common(spec: ClusterSpec) -> dict[str, Any]:
    return {"compress-type": settings(spec)["compress"], "log-level-console": "warn",
            "log-level-file": "info", "process-max": 2}


def _remote_repo(spec: ClusterSpec) -> dict[str, Any]:
    """repo1 only: where restore drills read from."""
    repo = repo_host(spec)
    return {"repo1-host": repo.mesh_address, "repo1-host-user": OS_USER}


def _remote_repos(spec: ClusterSpec) -> dict[str, Any]:
    """Every repository, as a PostgreSQL server pushes WAL to them (archive-push always pushes
    to all; with archive-async a repository that cannot be reached does not hold the others
    back: without it they get at most one segment ahead, pgBackRest's user guide, "Multiple
    Repositories"). WAL no repository took stays in pg_wal (no archive-push-queue-max: a gap
    in the archive would break point-in-time recovery silently)."""
    out: dict[str, Any] = {}
    for i, repo in enumerate(repo_hosts(spec), start=1):
        out.update({f"repo{i}-host": repo.mesh_address, f"repo{i}-host-user": OS_USER})
    out.update({"archive-async": "y", "spool-path": SPOOL_PATH})
    return out


def _local_repo(spec: ClusterSpec, index: int = 1) -> dict[str, Any]:
    """The repository on this host, under the index the PostgreSQL servers know it by: their
    archive-push starts its remote with --repo=<index>, which must be defined here."""
    return {f"repo{index}-path": REPO_PATH,
            f"repo{index}-retention-full": settings(spec)["retention_full"], "start-fast": "y"}


def pgbackrest_conf(spec: ClusterSpec, me: Server) -> str | None:
    """The main config: on a repository host every PostgreSQL server as pgN-host and its own
    repository under its index (each host backs up into its own); on a PostgreSQL server its data
    directory and every repository host. None elsewhere."""
    index = repo_index(spec, me)
    if index is not None:
        stanza: dict[str, Any] = {}
        for i, pg in enumerate(pg_servers(spec), start=1):
            stanza.update({f"pg{i}-host": pg.mesh_address, f"pg{i}-host-user": OS_USER,
                           f"pg{i}-path": DATA_DIR, f"pg{i}-port": PG_PORT})
        return _ini({"global": {**_common(spec), **_local_repo(spec, index)}, STANZA: stanza},
                    "repository host")
    if me.has("postgres"):
        return _ini({"global": {**_common(spec), **_remote_repos(spec)},
                     STANZA: {"pg1-path": DATA_DIR, "pg1-port": PG_PORT}},
                    "PostgreSQL server archiving to every repository host")
    return None


def drill_conf(spec: ClusterSpec, me: Server) -> str | None:
    """On backup servers: restore into the scratch data directory (`--config` of drills), from
    repo1 (local on its host, over SSH elsewhere)."""
    if not me.has("backup"):
        return None
    repo = _local_repo(spec) if me.name == repo_host(spec).name else _remote_repo(spec)
    return _ini({"global": {**_common(spec), **repo, "log-path": f"{DRILL_DIR}/log"},
                 STANZA: {"pg1-path": DRILL_DATA, "pg1-port": DRILL_PORT,
                          "pg1-socket-path": DRILL_DIR}},
                "restore drills into a scratch data directory")


def ssh_keypair(seed: str) -> tuple[str, str]:
    """(OpenSSH private key, public key line) of the cluster's pgBackRest key, derived from the
    `backup_ssh` secret (the same key on every run; the private text differs per call)."""
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    blob = b"".join(len(p).to_bytes(4, "big") + p for p in (b"ssh-ed25519", raw))
    return private, f"ssh-ed25519 {base64.b64encode(blob).decode()} freehold-backup"


def authorized_keys(spec: ClusterSpec, public: str) -> str:
    """The key may log in only from the mesh, with no terminal or forwarding."""
    return (f"# Managed by freehold (roles/backup): pgBackRest between servers, mesh only\n"
            f'restrict,from="{spec.mesh.network}" {public}\n')


# pgBackRest opens an SSH connection to each repository per command: a restore_command
# probe for a timeline history file (two repositories: two connections) took 1.24 s on the
# lab, and a promotion runs three of them (4.8 s of leader-kill's write outage). One
# multiplexed connection per peer brings a probe to 0.45 s (measured on the lab). It is kept
# for good, not for a while after its last use: a standby asks nothing while it streams, and
# with 5 minutes the first promotion on a freshly deployed lab set up its SSH connections
# again (promotion 1.4 s, against 0.73 s for the next one with them warm). A peer that dies
# under a kept connection is found by the keepalives (2 s x 3): its sessions fail within 6 s,
# and the next opens a new connection.
SSH_MULTIPLEX = ("    ControlMaster auto\n    ControlPath ~/.ssh/cm-%C\n"
                 "    ControlPersist yes\n    ServerAliveInterval 2\n    ServerAliveCountMax 3\n")


# Who opens those connections. Left to the promotion itself, a standby that never asked the
# archive anything (every standby of a fresh deploy, and every member after a partition broke
# its connections) set them up in the middle of its promotion: the lab's first switchover
# after a deploy took 3.0 s from the promote request to a writable primary (writes paused
# 7.5 s in all), against 0.6-1.35 s with the connections already open. So every
# PostgreSQL server runs a small unit that opens one connection per repository host and
# reopens it within REPO_SSH_EVERY_S of its loss (`ssh -O check`, then `ssh HOST true`,
# which leaves the master behind: ControlPersist); pgBackRest's own ssh finds it by its
# ControlPath. The connections live in that unit's cgroup (stopped with it).
REPO_SSH_UNIT = "freehold-repo-ssh"
REPO_SSH_SCRIPT = "/usr/local/bin/freehold-repo-ssh"
REPO_SSH_EVERY_S = 10


def repo_ssh_vars(spec: ClusterSpec, me: Server) -> dict[str, Any] | None:
    """The keep-open unit's settings on a PostgreSQL server (None elsewhere): the repository
    hosts' mesh addresses as pgbackrest.conf names them (the ControlPath hashes the address
    and the user, so they must be the same), not this server's own."""
    if not me.has("postgres"):
        return None
    hosts = [r.mesh_address for r in repo_hosts(spec) if r.name != me.name]
    if not hosts:
        return None
    # quoted here: the template writes them into a shell script
    return {"script": REPO_SSH_SCRIPT, "unit": REPO_SSH_UNIT, "user": OS_USER,
            "targets": [shlex.quote(f"{OS_USER}@{h}") for h in hosts],
            "every": REPO_SSH_EVERY_S}


def ssh_client_config(spec: ClusterSpec) -> str:
    """Mesh peers are authenticated by WireGuard: their host keys are learnt on first use."""
    return ("# Managed by freehold (roles/backup)\n"
            "Host *\n    BatchMode yes\n    ConnectTimeout 10\n"
            "    StrictHostKeyChecking accept-new\n" + SSH_MULTIPLEX)


def timer_vars(spec: ClusterSpec, index: int = 1) -> dict[str, Any]:
    """The daily full backup's unit and timer on repository `index`'s host."""
    at = settings(spec)["full_at" if index == 1 else "full_at_second"]
    return {"stanza": STANZA, "full_at": at, "unit": FULL_UNIT, "repo": index}


def first_backup_command(index: int, as_pg: str, tries: int = 20) -> str:
    """The first full backup into repository `index`, retried (bounded) while the other
    repository's first backup holds the database host's lock: both are taken in the same
    deploy step. The two wait different times between tries, so they do not collide again."""
    pause = 5 + 10 * index
    return (f"for i in $(seq 1 {tries}); do {as_pg} pgbackrest --stanza={STANZA} --repo={index} "
            f"--type=full backup && exit 0; "
            f"echo \"full backup try $i failed; again in {pause} s\" >&2; "
            f"sleep {pause}; done; exit 1")
