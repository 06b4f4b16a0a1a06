"""`freehold backup restore-drill`: prove the backups restore.

1. On the PostgreSQL primary: count the rows of every table of every database, create a named
   restore point right after, switch WAL and wait (bounded) until that segment is archived.
2. On the drill server (another backup server than the repository's, else the repository host
   itself): restore the latest backup with pgBackRest into a scratch data directory, replaying
   WAL up to the restore point, with archiving off (the copy never writes to the repository).
3. Start PostgreSQL on it (socket only, its own port), wait until it has promoted, count rows
   the same way, stop it and delete the scratch copy — also when something failed.
4. Compare per table. Rows committed on the primary between its counts and the restore point
   (a few milliseconds) would show as a difference: run drills at a quiet moment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from freehold.deploy.ops.remote import Outcome, run_one
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.ssh import SSHSettings
from freehold.roles.backup.config import (
    DRILL_CONFIG,
    DRILL_DATA,
    DRILL_DIR,
    DRILL_PORT,
    OS_USER,
    STANZA,
    drill_host,
    pg_servers,
    repo_host,
)
from freehold.roles.postgres.config import BIN_DIR, REST_PORT

AS_PG = f"cd / && runuser -u {OS_USER} --"
COUNT_SQL = ("SELECT format('%I.%I', table_schema, table_name) || '|' || "
             "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
             "table_schema, table_name), false, true, '')))[1]::text "
             "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
             "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
DATABASES_SQL = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"


class DrillError(Exception):
    pass


@dataclass
class DrillReport:
    spec: str
    primary: str = ""
    repository: str = ""
    drill_server: str = ""
    backup: str = ""
    restore_point: str = ""
    tables: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.tables) and all(t["match"] for t in self.tables)

    def to_doc(self) -> dict[str, Any]:
        return {"spec": self.spec, "ok": self.ok, "primary": self.primary,
                "repository": self.repository, "drill_server": self.drill_server,
                "backup": self.backup, "restore_point": self.restore_point,
                "error": self.error, "seconds": self.seconds,
                "mismatches": [t for t in self.tables if not t["match"]],
                "tables": self.tables}


def counts_script(psql: str) -> str:
    """Shell script printing `db|schema.table|count` for every table of every database."""
    return (f"set -e\nfor db in $({psql} -d postgres -c \"{DATABASES_SQL}\"); do\n"
            f"  {psql} -d \"$db\" -c \"{COUNT_SQL}\" | sed \"s/^/$db|/\"\ndone\n")


def parse_counts(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[2].strip().lstrip("-").isdigit():
            out[f"{parts[0]}/{parts[1]}"] = int(parts[2])
    return out


def compare(primary: dict[str, int], restored: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(set(primary) | set(restored)):
        db, table = name.split("/", 1)
        p, r = primary.get(name), restored.get(name)
        rows.append({"database": db, "table": table, "primary": p, "restored": r,
                     "match": p == r})
    return rows


def latest_backup(info_json: str) -> str | None:
    try:
        doc = json.loads(info_json)
    except json.JSONDecodeError:
        return None
    for stanza in doc if isinstance(doc, list) else []:
        backups = stanza.get("backup") or []
        if stanza.get("name") == STANZA and backups:
            return str(backups[-1].get("label"))
    return None


def _ok(out: Outcome, what: str) -> str:
    if not out.reachable or out.code != 0:
        detail = (out.error or out.stderr or out.stdout).strip()[-400:]
        raise DrillError(f"{out.server}: {what} failed: {detail or 'exit ' + str(out.code)}")
    return out.stdout


def find_primary(spec: ClusterSpec, ssh: SSHSettings) -> Server:
    for srv in pg_servers(spec):
        out = run_one(srv, f"curl -s -m 3 http://{srv.mesh_address}:{REST_PORT}/cluster", ssh)
        try:
            doc = json.loads(out.stdout) if out.code == 0 else {}
        except json.JSONDecodeError:
            continue
        for m in doc.get("members", []):
            if m.get("role") == "leader":
                return spec.server(m["name"])
    raise DrillError("no PostgreSQL primary found (Patroni REST API of every member asked)")


def wait_archived(primary: Server, wal: str, ssh: SSHSettings, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out = run_one(primary, f"{AS_PG} psql -XAtq -d postgres -c \"SELECT "
                               "coalesce(last_archived_wal, '') || '|' || "
                               "coalesce(last_failed_wal, '') FROM pg_stat_archiver\"", ssh)
        last = _ok(out, "pg_stat_archiver").strip()
        archived = last.split("|")[0]
        if archived and archived[8:] >= wal[8:]:
            return
        time.sleep(1)
    raise DrillError(f"{primary.name}: WAL {wal} not archived within {timeout:.0f} s "
                     f"(last archived|failed: {last}) — check archive_command and "
                     f"`pgbackrest --stanza={STANZA} check`")


def run_drill(spec: ClusterSpec, ssh: SSHSettings,
              progress: Callable[[str], None] | None = None) -> DrillReport:
    report = DrillReport(spec.name)
    say = progress or (lambda _: None)
    started = time.monotonic()
    try:
        repo, drill = repo_host(spec), drill_host(spec)
        report.repository, report.drill_server = repo.name, drill.name
        say("finding the primary")
        primary = find_primary(spec, ssh)
        report.primary = primary.name
        info = _ok(run_one(repo, f"{AS_PG} pgbackrest --stanza={STANZA} --output=json info",
                           ssh, timeout=60), "pgbackrest info")
        report.backup = latest_backup(info) or ""
        if not report.backup:
            raise DrillError(f"{repo.name}: no backup in stanza {STANZA} yet — run "
                             f"`systemctl start freehold-backup-full` there")
        say(f"counting rows on {primary.name}")
        counts = _ok(run_one(primary, "bash -s", ssh, timeout=300,
                             stdin=counts_script(f"{AS_PG} psql -XAtq -v ON_ERROR_STOP=1")),
                     "row counts")
        primary_counts = parse_counts(counts)
        point = f"freehold-drill-{int(time.time())}"
        out = _ok(run_one(primary, f"{AS_PG} psql -XAtq -v ON_ERROR_STOP=1 -d postgres "
                                   f"-c \"SELECT pg_create_restore_point('{point}')\" "
                                   "-c 'SELECT pg_walfile_name(pg_switch_wal())'", ssh),
                  "restore point")
        report.restore_point = point
        wal = out.split()[-1].strip()
        say(f"waiting for WAL {wal} to be archived")
        wait_archived(primary, wal, ssh)
        report.seconds["primary"] = round(time.monotonic() - started, 1)
        restored_counts = restore_and_count(drill, point, ssh, say, report)
        report.tables = compare(primary_counts, restored_counts)
    except DrillError as e:
        report.error = str(e)
    report.seconds["total"] = round(time.monotonic() - started, 1)
    return report


def _pg_ctl(action: str) -> str:
    opts = (f"-p {DRILL_PORT} -c listen_addresses='' -c unix_socket_directories={DRILL_DIR} "
            "-c archive_mode=off -c shared_buffers=64MB -c synchronous_standby_names='' "
            f"-c hba_file={DRILL_DATA}/pg_hba.conf -c ident_file={DRILL_DATA}/pg_ident.conf")
    if action == "start":
        return (f"{AS_PG} {BIN_DIR}/pg_ctl -D {DRILL_DATA} -w -t 300 "
                f"-l {DRILL_DIR}/postgres.log -o \"{opts}\" start")
    return (f"test -f {DRILL_DATA}/postmaster.pid && {AS_PG} {BIN_DIR}/pg_ctl -D {DRILL_DATA} "
            "-m fast -w -t 60 stop; true")


def restore_and_count(drill: Server, point: str, ssh: SSHSettings, say: Callable[[str], None],
                      report: DrillReport) -> dict[str, int]:
    t0 = time.monotonic()
    cleanup = f"{_pg_ctl('stop')}; rm -rf {DRILL_DATA} {DRILL_DIR}/postgres.log"
    prepare = (f"{cleanup} && install -d -o {OS_USER} -g {OS_USER} -m 700 {DRILL_DATA} "
               f"{DRILL_DIR}/log")
    _ok(run_one(drill, prepare, ssh, timeout=90), "prepare the scratch folder")
    try:
        say(f"restoring on {drill.name}")
        _ok(run_one(drill, f"{AS_PG} pgbackrest --config={DRILL_CONFIG} --stanza={STANZA} "
                           f"--type=name --target={point} --target-action=promote "
                           "--archive-mode=off restore", ssh, timeout=1800),
            "pgbackrest restore")
        report.seconds["restore"] = round(time.monotonic() - t0, 1)
        say(f"starting PostgreSQL on {drill.name}")
        start = run_one(drill, _pg_ctl("start"), ssh, timeout=330)
        if start.code != 0:
            log = run_one(drill, f"tail -n 15 {DRILL_DIR}/postgres.log", ssh).stdout
            raise DrillError(f"{drill.name}: restored PostgreSQL did not start: "
                             f"{log.strip()[-600:]}")
        psql = f"{AS_PG} psql -XAtq -h {DRILL_DIR} -p {DRILL_PORT}"
        deadline = time.monotonic() + 300
        while True:
            out = run_one(drill, f"{psql} -d postgres -c 'SELECT pg_is_in_recovery()'", ssh)
            if out.code == 0 and out.stdout.strip() == "f":
                break
            if time.monotonic() > deadline:
                raise DrillError(f"{drill.name}: restored copy still recovering after 300 s")
            time.sleep(1)
        report.seconds["recovered"] = round(time.monotonic() - t0, 1)
        say(f"counting rows on {drill.name}")
        counts = _ok(run_one(drill, "bash -s", ssh, timeout=600,
                             stdin=counts_script(f"{psql} -v ON_ERROR_STOP=1")),
                     "row counts of the restored copy")
        return parse_counts(counts)
    finally:
        run_one(drill, cleanup, ssh, timeout=90)
