"""`freehold trust`: record the spec's servers' host keys explicitly (issue 18).

Keys come from the network (trust on first use: said loudly, fingerprints printed to compare) or
from a file the operator got out of band (`ssh-keyscan` output, a provider's console). They go
to the spec's first known_hosts file. A key that differs from the one on record is refused
unless --replace is given.
"""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    SpecArg,
    console,
    err_console,
    fail,
    fail_lines,
    load_cluster,
)
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.ssh import KnownHosts, describe, known_name, presented_key, record
from freehold.deploy.ssh.hostkeys import parse_keyscan

EXIT_FAILED = 1


def say(line: str) -> None:
    console.print(line, highlight=False, soft_wrap=True)  # a fingerprint is never wrapped


def _selected(cluster: ClusterSpec, names: list[str] | None) -> list[Server]:
    if not names:
        return list(cluster.servers)
    known = {s.name for s in cluster.servers}
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"--server {', '.join(unknown)}: not a server of {cluster.name} — give server names "
             "from the spec")
    return [cluster.server(n) for n in names]


def _from_file(path: Path, servers: list[Server]) -> tuple[dict[str, list], list[str]]:
    """Each server's keys in the file (by address, [address]:port or name); missing names."""
    try:
        entries = parse_keyscan(path.read_text())
    except OSError as e:
        fail(f"--from-file {path}: cannot read it ({e.strerror or e}) — give an ssh-keyscan "
             "output or known_hosts file")
    except (UnicodeDecodeError, ValueError) as e:
        fail(f"--from-file {path}: {e} — give ssh-keyscan output (`host type base64` lines)")
    keys: dict[str, list] = {}
    for server in servers:
        names = {known_name(server), server.name}
        keys[server.name] = [k for hosts, k in entries if names & set(hosts)]
    return keys, [s.name for s in servers if not keys[s.name]]


def _fetched(servers: list[Server], timeout: float) -> tuple[dict[str, list], list[str]]:
    from concurrent.futures import ThreadPoolExecutor

    from paramiko import SSHException

    def one(server: Server) -> tuple[str, list, str]:
        try:
            return server.name, [presented_key(server, timeout)], ""
        except (OSError, SSHException, EOFError) as e:
            return server.name, [], f"{server.name} ({known_name(server)}): cannot fetch its " \
                f"host key ({type(e).__name__}: {e}) — check it runs sshd, or use --from-file"

    with ThreadPoolExecutor(max_workers=max(1, min(32, len(servers)))) as pool:
        results = list(pool.map(one, servers))
    return {n: ks for n, ks, _ in results}, [err for _, _, err in results if err]


def trust(
    spec: SpecArg = DEFAULT_SPEC,
    from_file: Path | None = typer.Option(None, "--from-file", help="Host keys got out of "
                                          "band (ssh-keyscan output or a known_hosts file) "
                                          "instead of fetching them over the network."),
    server: list[str] | None = typer.Option(None, "--server", help="Only this server "
                                            "(repeatable)."),
    replace: bool = typer.Option(False, "--replace", help="Replace a key that differs from "
                                 "the one on record (a reinstalled server: check it first)."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", min=0.5, max=120,
                                          help="Seconds to wait for each server."),
) -> None:
    """Record the servers' SSH host keys in the spec's known_hosts file, printing each
    fingerprint (SHA256, as ssh-keygen prints it)."""
    cluster = load_cluster(spec)
    servers = _selected(cluster, server)
    if not cluster.known_hosts:
        fail(f"{spec}: the spec names no known_hosts file — add `known_hosts: [FILE]`")
    target = Path(cluster.known_hosts[0])
    if from_file is not None:
        keys, missing = _from_file(from_file, servers)
        if missing:
            fail(f"--from-file {from_file}: no key for {', '.join(missing)} — add their lines "
                 "(ssh-keyscan -t ed25519 ADDRESS) or choose servers with --server")
        errors: list[str] = []
    else:
        err_console.print(
            "[bold yellow]WARNING:[/] fetching host keys over the network is trust on first use:"
            " whoever answers at these addresses now is recorded. Compare each fingerprint below"
            " with the server's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its "
            "console, or your provider's panel) — or pass --from-file with keys got out of band.",
            highlight=False, soft_wrap=True)
        keys, errors = _fetched(servers, connect_timeout)
    known = KnownHosts.load(cluster.known_hosts)
    entries, replaced, refused = [], [], []
    for srv in servers:
        for key in keys[srv.name]:
            problem = known.verdict(srv, key, spec)
            name = known_name(srv)
            line = f"{srv.name} ({name}): {describe(key)}"
            on_record = known.keys_for(srv)
            if problem is None:
                say(f"{line} already recorded")
            elif on_record is None:
                entries.append((name, key))
                say(f"{line} recorded")
            elif replace:
                entries.append((name, key))
                replaced.append(name)
                old = ", ".join(k.fingerprint for k in on_record[1].values())
                say(f"{line} recorded, replacing {old} (from {on_record[0]})")
            else:
                refused.append(str(problem))
    if entries:
        record(target, entries, replace=replaced)
        say(f"{len(entries)} key(s) written to {target}")
    if refused or errors:
        fail_lines(refused + errors, code=EXIT_FAILED)
