"""roles/backup: pgBackRest (Debian 2.45). Two repositories, each on a backup server in its own
site (roles/backup/config.py: repo_hosts); the PostgreSQL servers push WAL to both over SSH (on
the mesh) through `archive_command`, set in Patroni's dynamic config so every member, and
whichever one is primary after a failover, archives the same way, asynchronously so a lost
site's repository does not stop archiving to the other; standbys read the archive through
`restore_command` (config.RESTORE_COMMAND says why). Each repository host takes a full
backup daily (systemd timer) from whichever member is primary into its own repository. Backup
servers also get PostgreSQL 15 binaries and a scratch folder for `freehold backup
restore-drill`.

The role runs on the backup servers and on the PostgreSQL servers (`hosts`)."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, server

import freehold.roles.postgres as postgres_role
from freehold.deploy.spec import ClusterSpec, Server
from freehold.roles.backup.config import (
    ARCHIVE_COMMAND,
    CONFIG,
    DRILL_CONFIG,
    DRILL_DIR,
    FULL_UNIT,
    OS_USER,
    REPO_PATH,
    RESTORE_SCRIPT,
    SPOOL_PATH,
    SSH_DIR,
    STANZA,
    authorized_keys,
    dotted,
    drill_conf,
    dynamic_archiving,
    first_backup_command,
    pgbackrest_conf,
    repo_index,
    repo_ssh_vars,
    restore_script_vars,
    ssh_client_config,
    ssh_keypair,
    timer_vars,
)
from freehold.roles.backup.facts import BackupInfo, PatroniDynamicConfig, PublicKeyOf
from freehold.roles.common import (
    config_file,
    ensure_packages,
    render,
    service,
    template_path,
    templates_of,
    this_server,
)
from freehold.roles.ports import Ports
from freehold.roles.postgres import patroni_role
from freehold.roles.postgres.config import PATRONICTL
from freehold.roles.registry import Role

PORTS = Ports()  # SSH only, already open
AS_PG = f"cd / && runuser -u {OS_USER} --"


def hosts(spec: ClusterSpec) -> list[str]:
    return [s.name for s in spec.servers if s.has("backup") or s.has("postgres")]


_t = templates_of(__file__)


def _ssh_key(seed: str) -> None:
    """The cluster's pgBackRest key for the postgres user, rewritten only when it is not the
    key derived from the secret (the OpenSSH private text differs on every serialisation)."""
    private, public = ssh_keypair(seed)
    files.directory(name="postgres .ssh", path=SSH_DIR, user=OS_USER, group=OS_USER,
                    mode="700")
    have = host.get_fact(PublicKeyOf, path=f"{SSH_DIR}/id_ed25519")
    if have.split()[:2] != public.split()[:2]:
        config_file(f"{SSH_DIR}/id_ed25519", private, mode="600", user=OS_USER, group=OS_USER)
    config_file(f"{SSH_DIR}/id_ed25519.pub", public + "\n", mode="644", user=OS_USER,
                group=OS_USER)


def _repo_connections(spec: ClusterSpec, srv: Server) -> None:
    """PostgreSQL servers keep SSH connections to the repository hosts open
    (config.REPO_SSH_UNIT)."""
    rv = repo_ssh_vars(spec, srv)
    if rv is None:
        return
    script = config_file(rv["script"], render(_t("repo-ssh.sh.j2"), **rv), mode="755")
    unit = config_file(f"/etc/systemd/system/{rv['unit']}.service",
                       render(_t("repo-ssh.service.j2"), **rv))
    service(f"{rv['unit']}.service", restart=script.will_change or unit.will_change,
            daemon_reload=unit.will_change)


@deploy("backup: pgBackRest and SSH")
def install(ctx) -> None:
    srv = this_server(ctx)
    packages = ["pgbackrest", "openssh-client"]
    if srv.has("backup") and not srv.has("postgres"):
        # PostgreSQL binaries for restore drills; no cluster of their own
        files.directory(name="createcluster.d", path="/etc/postgresql-common/createcluster.d")
        config_file("/etc/postgresql-common/createcluster.d/00-freehold.conf",
                    render(template_path(postgres_role.__file__, "createcluster.conf.j2")))
        packages.insert(0, "postgresql-15")
    ensure_packages(packages, "backup")
    _ssh_key(ctx.secrets["backup_ssh"])
    _, public = ssh_keypair(ctx.secrets["backup_ssh"])
    config_file(f"{SSH_DIR}/authorized_keys", authorized_keys(ctx.spec, public), mode="600",
                user=OS_USER, group=OS_USER)
    config_file(f"{SSH_DIR}/config", ssh_client_config(ctx.spec), mode="600", user=OS_USER,
                group=OS_USER)
    files.directory(name="pgBackRest config folder", path="/etc/pgbackrest")
    main = pgbackrest_conf(ctx.spec, srv)
    if main is not None:
        config_file(CONFIG, main, mode="640", user="root", group=OS_USER)
    if repo_index(ctx.spec, srv) is not None:
        files.directory(name="pgBackRest repository", path=REPO_PATH, user=OS_USER,
                        group=OS_USER, mode="750")
    if srv.has("postgres"):
        files.directory(name="pgBackRest archive-async spool", path=SPOOL_PATH, user=OS_USER,
                        group=OS_USER, mode="750")
        config_file(RESTORE_SCRIPT, render(_t("restore-history.sh.j2"),
                                           **restore_script_vars(ctx.spec)), mode="755")
    _repo_connections(ctx.spec, srv)
    drill = drill_conf(ctx.spec, srv)
    if drill is not None:
        config_file(DRILL_CONFIG, drill, mode="640", user="root", group=OS_USER)
        files.directory(name="restore drill scratch folder", path=DRILL_DIR, user=OS_USER,
                        group=OS_USER, mode="700")


def _stanza_exists() -> bool:
    return bool(host.get_fact(File, path=f"{REPO_PATH}/backup/{STANZA}/backup.info"))


def _archiving_unset() -> dict[str, str]:
    """The dynamic-config entries of dynamic_archiving() that Patroni does not hold yet."""
    doc = host.get_fact(PatroniDynamicConfig, patronictl=PATRONICTL)
    return {k: v for k, v in dynamic_archiving().items() if dotted(doc, k) != v}


@deploy("backup: stanza and WAL archiving")
def archiving(ctx) -> None:
    srv = this_server(ctx)
    if repo_index(ctx.spec, srv) is not None and not _stanza_exists():
        server.shell(name=f"pgBackRest stanza-create {STANZA}",
                     commands=[f"{AS_PG} pgbackrest --stanza={STANZA} stanza-create"])
    if srv.has("postgres") and patroni_role(srv.mesh_address) == "leader":
        unset = _archiving_unset()
        if unset:
            sets = " ".join(f"-s {shlex.quote(f'{k}={v}')}" for k, v in unset.items())
            server.shell(name="archive_command and restore_command through Patroni's dynamic "
                              "config",
                         commands=[f"{PATRONICTL} edit-config --force --quiet {sets}",
                                   # Patroni applies it on its next loop: wait (bounded) for it
                                   "for i in $(seq 1 60); do "
                                   f"[ \"$({AS_PG} psql -XAtq -c 'SHOW archive_command')\" = "
                                   f"'{ARCHIVE_COMMAND}' ] && exit 0; sleep 1; done; "
                                   "echo 'archive_command not applied by Patroni in 60 s' >&2; "
                                   "exit 1"])


def _has_backup() -> bool:
    info = host.get_fact(BackupInfo, as_user=AS_PG, stanza=STANZA)
    return any(stanza.get("backup") for stanza in info if isinstance(stanza, dict))


@deploy("backup: daily full backup")
def schedule(ctx) -> None:
    srv = this_server(ctx)
    index = repo_index(ctx.spec, srv)
    if index is None:
        return
    tv = timer_vars(ctx.spec, index)
    unit = config_file(f"/etc/systemd/system/{FULL_UNIT}.service",
                       render(_t("backup-full.service.j2"), **tv))
    timer = config_file(f"/etc/systemd/system/{FULL_UNIT}.timer",
                        render(_t("backup-full.timer.j2"), **tv))
    service(f"{FULL_UNIT}.timer", restart=timer.will_change,
            daemon_reload=unit.will_change or timer.will_change)
    if not _has_backup():
        server.shell(name="First full backup",
                     commands=[first_backup_command(index, AS_PG)])


ROLE = Role("backup", steps=(install, archiving, schedule), ports=PORTS, hosts=hosts)
