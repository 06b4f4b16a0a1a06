"""What `freehold status` asks each server: one shell script per server, built from its roles,
printing sections (`@@ <name>`) that `parse_sections` splits again. Every probe is bounded by
its own timeout; secrets are read on the server from their 0600 files, never put in argv."""

from __future__ import annotations

import fnmatch
import shlex

from freehold.deploy.ops.fleet import targets_command
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import media_masters, redis_nodes_per_server
from freehold.roles.backup.config import (
    FULL_UNIT,
    OS_USER,
    STANZA,
    BackupConfigError,
    backup_servers,
    repo_hosts,
)
from freehold.roles.dns.config import DnsConfigError
from freehold.roles.dns.config import zone as dns_zone
from freehold.roles.etcd.config import CLIENT_PORT as ETCD_PORT
from freehold.roles.monitoring.config import ALERTMANAGER_PORT, app_port, exporters_on
from freehold.roles.postgres.config import REST_PORT as PATRONI_PORT
from freehold.roles.redis.config import PORT as REDIS_PORT
from freehold.roles.redis.config import node_unit
from freehold.roles.registry import deployed

MARK = "@@ "
STREAMS = ("stream:posts", "stream:events")
APP_CURRENT = "/opt/freehold/current"
REDIS_AUTH = "/etc/redis/freehold-auth.conf"

# systemd units of the roles a spec may name that no module deploys yet (the others: Role.units)
UNDEPLOYED_UNITS: dict[str, tuple[str, ...]] = {
    "loadgen": (),
}


EXPORTERS = "exporters"   # not a role of the spec: roles/monitoring puts them on every server


def units_for(spec: ClusterSpec, server: Server) -> dict[str, list[str]]:
    """role -> the units that must run on this server for it; `exporters` -> the monitoring
    exporters every server runs (the node exporter, plus its roles' own)."""
    out: dict[str, list[str]] = {}
    for role in server.roles:
        this = deployed(role)
        units = list(this.units if this is not None else UNDEPLOYED_UNITS.get(role, ()))
        if role == "media" and server.name in {m.name for m in media_masters(spec)}:
            units.append("freehold-weed-master.service")
        if role == "backup" and server.name in _probed_repos(spec):
            units.append(f"{FULL_UNIT}.timer")
        if role == "redis":  # the server's extra nodes (roles.redis.nodes_per_server)
            units += [f"{node_unit(k)}.service" for k in range(1, redis_nodes_per_server(spec))]
        out[role] = units
    if deployed("monitoring") is not None:
        out[EXPORTERS] = [f"{package}.service" for package, _ in exporters_on(server)]
    return out


def repo_names(spec: ClusterSpec) -> list[str]:
    """The backup repositories' servers (repo1 first); [] when no server has the role backup.
    A spec that names no backup server as the repository (roles.backup.repo_host) raises
    BackupConfigError: `freehold status` reports it as the backup's error."""
    if not backup_servers(spec):
        return []
    return [s.name for s in repo_hosts(spec)]


def _probed_repos(spec: ClusterSpec) -> list[str]:
    """The repositories to probe: none when the spec's are wrong (classify reports that)."""
    try:
        return repo_names(spec)
    except BackupConfigError:
        return []


def _is_pattern(unit: str) -> bool:
    return any(c in unit for c in "*?[")


def _section(name: str, command: str, timeout: int = 4) -> str:
    # output may lack a final newline (curl): one is added before the exit code line
    return f"echo '{MARK}{name}'; timeout {timeout} sh -c {shlex.quote(command)} 2>&1; " \
           f"rc=$?; echo; echo \"{MARK}rc $rc\""


def probe_script(spec: ClusterSpec, server: Server) -> str:
    """The shell script run on `server` (sh, ~10 s at most)."""
    mesh = server.mesh_address
    parts = []
    units = sorted({u for us in units_for(spec, server).values() for u in us})
    names = [u for u in units if not _is_pattern(u)]
    patterns = [u for u in units if _is_pattern(u)]
    if names:
        parts.append(_section("units", "systemctl show -p Id -p LoadState -p ActiveState "
                                       f"-p SubState {' '.join(names)}"))
    if patterns:
        parts.append(_section("unit-patterns", "systemctl list-units --all --plain "
                                               f"--no-legend {' '.join(patterns)}"))
    if server.has("postgres"):
        parts.append(_section("patroni", f"curl -s -m 3 http://{mesh}:{PATRONI_PORT}/cluster"))
    if server.has("etcd"):
        parts.append(_section("etcd", f"curl -s -m 3 http://{mesh}:{ETCD_PORT}/health"))
    if server.has("redis"):
        auth = f"REDISCLI_AUTH=$(awk '/^requirepass/{{print $2}}' {REDIS_AUTH}); " \
               "export REDISCLI_AUTH; "
        parts.append(_section("redis", f"{auth}redis-cli -h {mesh} -p {REDIS_PORT} "
                                       "cluster info"))
        xinfo = "; ".join(f"echo '# {s}'; redis-cli -c -h {mesh} -p {REDIS_PORT} "
                          f"--json xinfo groups {s}" for s in STREAMS)
        parts.append(_section("streams", auth + xinfo))
    if server.has("lb"):
        parts.append(_section("haproxy", (
            "sock=$(awk '$1==\"stats\" && $2==\"socket\" {print $3; exit}' "
            "/etc/haproxy/haproxy.cfg); test -S \"$sock\" || exit 3; "
            "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); "
            "s.settimeout(2); s.connect(sys.argv[1]); s.sendall(b\"show stat\\n\"); "
            "b=b\"\"\nwhile True:\n  d=s.recv(65536)\n  if not d: break\n  b+=d\n"
            "sys.stdout.write(b.decode())' \"$sock\"")))
    if server.has("app"):
        port = app_port(spec)
        parts.append(_section("release", f"readlink -f {APP_CURRENT}"))
        parts.append(_section("readyz", f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' "
                                        f"http://{mesh}:{port}/readyz"))
    if server.has("monitoring"):
        parts.append(_section("alerts", f"curl -s -m 3 'http://{mesh}:{ALERTMANAGER_PORT}"
                                        "/api/v2/alerts?active=true&silenced=false"
                                        "&inhibited=false'"))
        # its Prometheus's view of every node exporter: the plain servers are judged from it
        parts.append(_section("targets", targets_command(mesh), timeout=8))
    if server.has("dns"):
        try:
            name = dns_zone(spec)
        except DnsConfigError:
            name = None  # classify reports it
        if name:
            parts.append(_section("dns", dns_probe(name, server.public_address), timeout=8))
    if server.name in _probed_repos(spec):
        parts.append(_section("backup", f"cd / && runuser -u {OS_USER} -- pgbackrest "
                                        f"--stanza={STANZA} --output=json info", timeout=8))
    return "\n".join(parts) + "\n"


def dns_probe(zone: str, address: str) -> str:
    """Ask the server's PowerDNS, as the world does: the zone's SOA (its serial), then the
    zone's A answer (the site VIPs it gives out now), separated by a `#` line."""
    dig = f"dig +short +time=2 +tries=2 @{address}"
    return f"{dig} SOA {zone} && echo '#' && {dig} A {zone}"


def parse_sections(stdout: str) -> dict[str, tuple[int | None, str]]:
    """{section: (exit code, output)} from a probe script's stdout."""
    out: dict[str, tuple[int | None, str]] = {}
    name: str | None = None
    lines: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(MARK + "rc ") and name is not None:
            try:
                code: int | None = int(line[len(MARK) + 3:].strip())
            except ValueError:
                code = None
            out[name] = (code, "\n".join(lines).strip("\n"))
            name, lines = None, []
        elif line.startswith(MARK):
            name, lines = line[len(MARK):].strip(), []
        elif name is not None:
            lines.append(line)
    return out


def match_units(expected: list[str], found: dict[str, str]) -> dict[str, str]:
    """Expected unit (or pattern) -> state: `active`, another systemd state, or `missing`."""
    out = {}
    for unit in expected:
        if _is_pattern(unit):
            hits = [s for u, s in found.items() if fnmatch.fnmatchcase(u, unit)]
            if not hits:
                out[unit] = "missing"
            else:
                out[unit] = "active" if all(s == "active" for s in hits) else \
                    next(s for s in hits if s != "active")
        else:
            out[unit] = found.get(unit, "missing")
    return out


def parse_unit_states(sections: dict[str, tuple[int | None, str]]) -> dict[str, str]:
    """unit -> `active` / `failed` / `inactive` / `activating` / `missing` (not installed)."""
    found: dict[str, str] = {}
    block: dict[str, str] = {}
    text = sections.get("units", (None, ""))[1]
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if "Id" in block:
                state = block.get("ActiveState", "unknown")
                if block.get("LoadState") == "not-found":
                    state = "missing"
                found[block["Id"]] = state
            block = {}
            continue
        if "=" in line:
            k, v = line.split("=", 1)
            block[k] = v
    for line in sections.get("unit-patterns", (None, ""))[1].splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] != "not-found":
            found[cols[0]] = cols[2]
    return found
