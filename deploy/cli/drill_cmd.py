"""`freehold drill SPEC SCENARIO|--all`: failover drills measured as users see them (issue 21).

On a lab (a spec with `lab:`) every scenario runs; on real servers only planned ones (a
switchover), and only with --production-ok. Writes the JSON document, one PNG timeline per drill
and an HTML page of the suite into --out."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    SpecArg,
    console,
    err_console,
    fail,
    load_cluster,
    print_json,
)

EXIT_FAILED = 1
PASSWORD_ENV = "FREEHOLD_DRILL_PASSWORD"


def drill(
    spec: SpecArg = DEFAULT_SPEC,
    scenario: str | None = typer.Argument(None, help="Scenario (see --list)."),
    all_: bool = typer.Option(False, "--all", help="Every scenario the spec allows."),
    list_: bool = typer.Option(False, "--list", help="List the scenarios and exit."),
    production_ok: bool = typer.Option(
        False, "--production-ok", help="Allow planned scenarios on a spec that is not a lab."),
    accounts: str | None = typer.Option(
        None, "--accounts", help="Comma-separated accounts writing during the drill (2 per "
        f"site with a virtual IP; password in ${PASSWORD_ENV}). Default on a lab: demo "
        "accounts."),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default: "
                                    "drill-reports/<name>-<time>)."),
    back: bool = typer.Option(True, "--back/--no-back", help="Switch the leader back into "
                              "roles.postgres.primary_site after each drill."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ssh_key: Path | None = typer.Option(None, "--ssh-key", help="Private key for SSH."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="known_hosts file."),
) -> None:
    """Run failover drills: fault, steady writes and reads through every VIP, restore, report."""
    from freehold.deploy.drills.scenarios import SCENARIOS

    if list_:
        for s in SCENARIOS.values():
            console.print(f"{s.name:18} {'planned ' if s.planned else 'lab only'}  "
                          f"≤{s.target_write_s:.0f} s  {s.title}", highlight=False)
        return
    cluster = load_cluster(spec)
    is_lab = cluster.lab is not None
    if is_lab and production_ok:
        fail(f"--production-ok: {spec} is a lab spec — leave the option out")
    if not is_lab and not production_ok:
        fail(f"{spec}: not a lab spec — drills cut power and links; give --production-ok to "
             "run the planned ones (switchover) on these servers")
    allowed = [s for s in SCENARIOS.values() if is_lab or s.planned]
    if all_ == (scenario is not None):
        fail("give one SCENARIO or --all (see --list)")
    if scenario is not None:
        if scenario not in SCENARIOS:
            fail(f"scenario {scenario!r}: unknown — one of {', '.join(SCENARIOS)}")
        if SCENARIOS[scenario] not in allowed:
            fail(f"scenario {scenario}: cuts power or links, lab only — on real servers run a "
                 f"planned one ({', '.join(s.name for s in allowed)})")
        chosen = [SCENARIOS[scenario]]
    else:
        chosen = allowed
    if not cluster.servers_with_role("postgres"):
        fail(f"{spec}: no postgres server — nothing to drill")

    from freehold.deploy.drills.traffic import Account

    if accounts:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            fail(f"--accounts: set ${PASSWORD_ENV} to their password")
        acc = [Account(a.strip(), password) for a in accounts.split(",") if a.strip()]
    elif is_lab:
        from freehold.deploy.drills.runner import lab_accounts

        acc = lab_accounts()
    else:
        fail(f"--accounts: give the accounts writing during the drill (with ${PASSWORD_ENV})")
    folder = out or Path("drill-reports") / f"{cluster.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    results, doc = _run(spec, cluster, is_lab, chosen, acc, folder, back, ssh_key, known_hosts,
                        json_out)
    if json_out:
        print_json(doc)
    else:
        from freehold.deploy.drills.report import failed_checks, latency_table, summary_table

        console.print(summary_table(results))
        if (lat := latency_table(results)) is not None:
            console.print(lat)
        for r in results:
            if not r.ok:
                console.print(f"[red]{r.scenario}[/red]: {'; '.join(failed_checks(r))}",
                              highlight=False)
        console.print(f"report: {doc['html']}", highlight=False)
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_FAILED)


def _run(spec: Path, cluster: Any, is_lab: bool, chosen: list[Any], acc: list[Any],
         folder: Path, back: bool, ssh_key: Path | None, known_hosts: Path | None,
         json_out: bool) -> tuple[list[Any], dict[str, Any]]:
    import json

    from freehold.deploy.drills.report import suite_html, timeline_png
    from freehold.deploy.drills.runner import Session, run_drill
    from freehold.deploy.drills.scenarios import DrillError
    from freehold.deploy.drills.watch import LabHosts, SshHosts
    from freehold.deploy.provision.up import ca_file_for

    lab = None
    if is_lab:
        from freehold.deploy.lab import Lab
        from freehold.deploy.lab.errors import LabError

        try:
            lab = Lab.from_spec(spec)
        except LabError as e:
            fail(str(e))
        if not lab.is_up():
            fail(f"lab {cluster.name} is not up — `freehold up --spec {spec}` first")
        hosts: Any = LabHosts(lab)
    else:
        from freehold.deploy.cli.deploy_cmd import ssh_settings

        hosts = SshHosts(cluster, ssh_settings(spec, cluster, ssh_key, known_hosts))
    status = err_console if json_out else console
    results = []
    stopped: str | None = None
    try:
        session = Session.open(cluster, ca_file_for(cluster), acc)
        for scn in chosen:
            with status.status(f"drill {scn.name}: {scn.title}…"):
                results.append(run_drill(scn, cluster, hosts, lab, session, back=back))
            r = results[-1]
            status.print(f"{scn.name}: {'ok' if r.ok else 'FAILED'} (worst write outage "
                         f"{r.worst_write_s} s, lost {len(r.lost)})", highlight=False)
    except DrillError as e:
        stopped = str(e)
    except KeyboardInterrupt:
        stopped = "interrupted"
    if stopped is not None and not results:
        fail(stopped, code=EXIT_FAILED)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = {r.scenario: timeline_png(r, folder / f"{r.scenario}.png").name for r in results}
    page = suite_html(results, pngs, folder / "index.html", f"Failover drills on {cluster.name}")
    doc = {"spec": str(spec), "ok": all(r.ok for r in results), "html": str(page),
           "drills": [r.to_doc() for r in results]}
    (folder / "drills.json").write_text(json.dumps(
        {**doc, "drills": [r.to_doc(with_events=True) for r in results]}, indent=1))
    if stopped is not None:
        # the drills run before the stop keep their report: a long --all run is not lost
        fail(f"{stopped} (after {len(results)} of {len(chosen)} drills; their report: {page})",
             code=EXIT_FAILED)
    return results, doc
