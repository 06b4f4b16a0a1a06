"""`freehold status`: one screen for on-call (issue 6)."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    SpecArg,
    console,
    load_cluster,
    print_json,
)
from freehold.deploy.spec import ClusterSpec
from freehold.deploy.ssh import SSHSettings


def ssh_options(spec: Path, cluster: ClusterSpec, ssh_key: Path | None,
                known_hosts: Path | None, connect_timeout: float,
                parallel: int | None = None) -> SSHSettings:
    from freehold.deploy.cli.deploy_cmd import ssh_settings

    ssh = ssh_settings(spec, cluster, ssh_key, known_hosts)
    ssh.connect_timeout = connect_timeout
    if parallel is not None:
        ssh.parallel = parallel
    return ssh


def status(
    spec: SpecArg = DEFAULT_SPEC,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_key: Path | None = typer.Option(None, "--ssh-key", help="Private key for SSH."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="known_hosts file."),
    connect_timeout: float = typer.Option(3.0, "--connect-timeout", min=0.5, max=60,
                                          help="Seconds before a server counts as down."),
    parallel: int = typer.Option(64, "--parallel", min=1, max=512,
                                 help="SSH connections at a time (one per server)."),
    deadline: float = typer.Option(18.0, "--deadline", min=1, max=600,
                                   help="Seconds for all the probing (the plain servers "
                                        "Prometheus does not see up go last): a server not "
                                        "done by then counts as down."),
    all_servers: bool | None = typer.Option(None, "--all/--unhealthy",
                                            help="List every server, or only the unhealthy "
                                                 "ones (default: every one up to 40)."),
    deep: bool = typer.Option(False, "--deep", "--ssh-all",
                              help="Probe every server over SSH (its units), also the plain "
                                   "ones (base, mesh, exporters) otherwise judged from "
                                   "Prometheus."),
) -> None:
    """Show what is up per site and role, unhealthy servers first; exit 1 when anything is
    degraded. Servers carrying only base, mesh and the exporters are judged from the
    monitoring servers' Prometheus (scraped over the mesh), the others over SSH."""
    from freehold.deploy.ops.status import gather

    cluster = load_cluster(spec)
    ssh = ssh_options(spec, cluster, ssh_key, known_hosts, connect_timeout, parallel)
    ssh.command_timeout = min(ssh.command_timeout, deadline)
    report = gather(cluster, ssh, deadline, deep=deep)
    if json_out:
        print_json(report.to_doc())
    else:
        from freehold.deploy.ops.render import show

        show(report, console, all_servers)
    raise typer.Exit(0 if report.ok else 1)
