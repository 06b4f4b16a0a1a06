"""`freehold migrate`: move off a cloud provider (issue 8)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from freehold.deploy.cli.common import console, fail, print_json
from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.state import set_step, state_dir_for

if TYPE_CHECKING:
    from freehold.deploy.migrate.objects import ObjectCopier

app = typer.Typer(help="Move a running deployment off a cloud provider.", no_args_is_help=True)

ManifestOpt = typer.Option(None, "--manifest", help="record this step in the manifest's runbook")
SecretsOpt = typer.Option(None, "--secrets", help="the cluster's secrets file when --to is a "
                          "spec (default: beside the spec, as freehold deploy writes it)")


def _fail(e: Exception) -> None:
    fail(escape(str(e)))


def _state(manifest: Path | None) -> Path | None:
    return state_dir_for(manifest) if manifest else None


@app.command("objects")
def objects(
    from_: str = typer.Option(..., "--from", help="s3://BUCKET[/prefix] (AWS or --from-endpoint)"),
    to: str = typer.Option(..., "--to", help="cluster spec file (its media S3 gateway, over "
                           "SSH), http://HOST:PORT/BUCKET or s3://BUCKET"),
    from_endpoint: str = typer.Option(None, help="S3 endpoint of the source (default AWS)"),
    profile: str = typer.Option(None, help="AWS profile for the source"),
    to_endpoint: str = typer.Option(None, help="endpoint when --to is s3://BUCKET"),
    to_access_key: str = typer.Option(
        None, envvar="FREEHOLD_S3_ACCESS_KEY",
        help="target access key (default: the spec's secrets for a spec)"),
    to_secret_key: str = typer.Option(
        None, envvar="FREEHOLD_S3_SECRET_KEY", help="target secret (default: the spec's)"),
    secrets: Path = SecretsOpt,
    checkpoint: Path = typer.Option(None, help="checkpoint file, SQLite (default beside the "
                                    "manifest; an old JSON checkpoint is converted)"),
    workers: int = typer.Option(16, min=1, max=256, help="objects copied at once"),
    listers: int = typer.Option(4, min=1, max=64, help="key ranges listed at once"),
    part_size_mib: int = typer.Option(16, min=16, max=5120, help="multipart part size "
                                      "(objects over 16 MiB)"),
    parts_in_flight: int = typer.Option(8, min=1, max=64, help="multipart parts held and sent "
                                        "at once, in the whole process (memory: this × part size)"),
    retries: int = typer.Option(6, min=1, max=20, help="attempts per object (after botocore's "
                                "own, jittered backoff)"),
    fast: bool = typer.Option(True, "--fast-small/--boto3-small", help="small objects through "
                              "the lean SigV4 client (boto3 when a store needs it) or boto3"),
    final: bool = typer.Option(False, "--final", help="the last pass before the database "
                               "cutover: recorded as runbook step objects-final"),
    verify: bool = typer.Option(False, "--verify", help="copy nothing: list source and target "
                                "range by range and compare sizes and checksums"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be copied"),
    json_out: bool = typer.Option(False, "--json"),
    manifest: Path = ManifestOpt,
) -> None:
    """Copy a bucket in parallel while listing it, resumably, verified by size and checksum."""
    from freehold.deploy.migrate.objects import ObjectCopier
    from freehold.deploy.migrate.s3client import parse_location
    from freehold.deploy.migrate.targets import media_target

    step = "objects-final" if final else "objects"
    try:
        src = parse_location(from_, endpoint=from_endpoint)
        src.profile = profile
        with media_target(to, to_endpoint, to_access_key, to_secret_key, secrets) as dst:
            sd = _state(manifest)
            base = sd or Path(".")
            cp = checkpoint or base / f"objects-{src.bucket}.checkpoint.sqlite"
            legacy = None if checkpoint else base / f"objects-{src.bucket}.checkpoint.json"
            copier = ObjectCopier(src, dst, cp, workers=workers, retries=retries,
                                  listers=listers, part_size=part_size_mib * 1024 * 1024,
                                  parts_in_flight=parts_in_flight, legacy_checkpoint=legacy,
                                  fast=fast)
            copier.check_access()
            if verify:
                _verify_objects(copier, json_out)
            else:
                _copy_objects(copier, from_, to, step, dry_run, json_out, sd)
    except MigrateError as e:
        _fail(e)


def _progress(json_out: bool) -> Progress:
    return Progress(TextColumn("copying"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TextColumn("{task.fields[objects]} objects"), console=console,
                    disable=json_out)


def _copy_objects(copier: ObjectCopier, from_: str, to: str, step: str, dry_run: bool,
                  json_out: bool, sd: Path | None) -> None:
    import threading

    src, dst = copier.source, copier.target
    if dry_run:
        report = copier.run(dry_run=True)
        if json_out:
            print_json({"to_copy": report.sample, "objects": report.to_copy,
                        "bytes": report.bytes_to_copy, "skipped": report.skipped,
                        "target": dst.describe()})
            return
        t = Table(title=f"would copy {report.to_copy} objects ({report.bytes_to_copy} bytes) to "
                        f"{dst.describe()}, skip {report.skipped}")
        t.add_column("key")
        for key in report.sample[:50]:
            t.add_row(key)
        if report.to_copy > 50:
            t.add_row(f"… {report.to_copy - 50} more")
        console.print(t)
        return
    set_step(sd, step, "running", source=from_, target=to)
    lock, count = threading.Lock(), [0]
    with _progress(json_out) as bar:
        task = bar.add_task("copy", total=None, objects=0)

        def advance(n: int) -> None:
            with lock:
                count[0] += 1
                bar.update(task, advance=n, objects=count[0])

        try:
            report = copier.run(progress=advance)
        except KeyboardInterrupt:
            set_step(sd, step, "failed", error="interrupted (Ctrl-C): rerun to resume")
            raise
        except MigrateError as e:
            set_step(sd, step, "failed", error=str(e)[:200])
            raise
    detail = {k: v for k, v in report.as_dict().items() if k != "failures"}
    if step == "objects-final":
        detail["cutover_copy_seconds"] = detail["seconds"]
    set_step(sd, step, "failed" if report.failed else "done", **detail)
    if json_out:
        print_json(report.as_dict())
    else:
        t = Table(title=f"{src.describe()} → {dst.describe()}")
        for c in ("listed", "copied", "skipped", "failed", "retries", "bytes", "seconds"):
            t.add_column(c, justify="right")
        t.add_row(str(report.listed), str(report.copied), str(report.skipped),
                  str(report.failed), str(report.retries), str(report.bytes_copied),
                  f"{report.seconds:.1f}")
        console.print(t)
        if step == "objects-final":
            console.print(f"cut-over copy took {report.seconds:.1f} s "
                          f"({report.copied} objects new or changed since the last pass)")
        for key, why in list(report.failures.items())[:20]:
            console.print(f"[red]failed[/red] {escape(key)}: {escape(why)}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


def _verify_objects(copier: ObjectCopier, json_out: bool) -> None:
    rep = copier.verify()
    if json_out:
        print_json({"ok": rep.ok, **rep.as_dict()})
    else:
        colour = "green" if rep.ok else "red"
        console.print(f"[{colour}]verified {rep.checked} objects: {rep.missing} missing, "
                      f"{rep.mismatched} mismatched[/] ({rep.seconds:.1f} s)")
        for line in rep.problems[:20]:
            console.print(escape(line), highlight=False)
    if not rep.ok:
        raise typer.Exit(1)


@app.command("discover")
def discover(
    region: list[str] = typer.Option(["us-east-1"], "--region", help="AWS region (repeat)"),
    profile: str = typer.Option(None, help="AWS profile"),
    out: Path = typer.Option(Path("migration.yaml"), "--out", help="manifest to write"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Inventory EC2, ASGs, ELBs, RDS, ElastiCache, S3, Route 53, CloudFront into a manifest."""
    import yaml

    from freehold.deploy.atomic import write_text as atomic_write_text
    from freehold.deploy.migrate.discover import discover as run_discover
    from freehold.deploy.migrate.discover import summary_rows

    try:
        with console.status("discovering AWS resources", spinner="dots"):
            doc = run_discover(region, profile)
    except MigrateError as e:
        _fail(e)
    atomic_write_text(out, yaml.safe_dump(doc, sort_keys=False))
    set_step(state_dir_for(out), "discover", "done", manifest=str(out))
    if json_out:
        print_json(doc)
        return
    t = Table(title=f"AWS resources → Freehold roles (manifest {out})")
    for c in ("kind", "id", "details", "role"):
        t.add_column(c)
    for row in summary_rows(doc):
        t.add_row(*row)
    console.print(t)
    d = Table(title="outside dependencies that can drop the platform the same day")
    d.add_column("dependency")
    d.add_column("where it is now")
    for dep in doc["external_dependencies"]:
        d.add_row(dep["name"], dep["now"])
    console.print(d)


@app.command("dns")
def dns(
    zone: str = typer.Option(..., "--zone", help="Route 53 zone name or id"),
    profile: str = typer.Option(None, help="AWS profile"),
    bind_out: Path = typer.Option(None, "--bind", help="write the BIND zone file here"),
    pdns_out: Path = typer.Option(None, "--powerdns", help="write PowerDNS API JSON here"),
    lower_ttl: bool = typer.Option(False, "--lower-ttl", help="lower TTLs to 60 s"),
    cutover: bool = typer.Option(False, "--cutover", help="point records at --address"),
    name: list[str] = typer.Option(None, "--name", help="record to repoint (default apex)"),
    address: list[str] = typer.Option(None, "--address", help="new cluster address (repeat)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the change set only"),
    import_to: Path = typer.Option(None, "--import", help="import the zone into this cluster "
                                   "spec's dns role (writes its roles.dns.records file)"),
    json_out: bool = typer.Option(False, "--json"),
    manifest: Path = ManifestOpt,
) -> None:
    """Export a Route 53 zone, lower its TTLs, import it into the dns role's zone, and
    repoint it at cutover."""
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    from freehold.deploy.atomic import write_text as atomic_write_text
    from freehold.deploy.migrate import dns as d

    if cutover and not address:
        fail("--cutover needs the new cluster's addresses: add --address IP (repeat)")
    try:
        c = d.r53(profile)
        zid, zname = d.find_zone(c, zone)
        recs = d.records(c, zid)
    except (MigrateError, ClientError, BotoCoreError) as e:
        _fail(e)
    if import_to is not None:
        _import_zone(import_to, zname, recs, dry_run, json_out, manifest)
        return
    if bind_out:
        atomic_write_text(bind_out, d.to_bind(zname, recs))
    if pdns_out:
        atomic_write_text(pdns_out, json.dumps(d.to_powerdns(zname, recs), indent=1))
    changes = []
    if lower_ttl:
        changes += d.lower_ttl_changes(recs)
    if cutover:
        changes += d.cutover_changes(recs, name or [zname], address)
    step = "dns-cutover" if cutover else "dns-lower-ttl" if lower_ttl else None
    if changes and not dry_run:
        try:
            d.apply(c, zid, changes, "freehold migrate")
        except (ClientError, BotoCoreError) as e:
            set_step(_state(manifest), step or "dns", "failed", error=str(e)[:200])
            _fail(e)
    if step and not dry_run:
        set_step(_state(manifest), step, "done", zone=zname, changes=len(changes))
    if json_out:
        print_json({"zone": zname, "records": len(recs), "dry_run": dry_run,
                    "changes": changes})
        return
    t = Table(title=f"{zname}: {len(recs)} records, "
                    f"{len(changes)} changes{' (dry run)' if dry_run else ''}")
    for col in ("action", "name", "type", "ttl", "values"):
        t.add_column(col)
    for ch in changes:
        r = ch["ResourceRecordSet"]
        vals = ",".join(v["Value"] for v in r.get("ResourceRecords", [])) or str(
            r.get("AliasTarget", {}).get("DNSName", ""))
        t.add_row(ch["Action"], r["Name"], r["Type"], str(r.get("TTL", "")), vals)
    console.print(t)


def _import_zone(spec_path: Path, zname: str, recs: list[dict], dry_run: bool, json_out: bool,
                 manifest: Path) -> None:
    """`migrate dns --import SPEC`: the kept records to `roles.dns.records`, the diff shown."""
    import difflib

    from freehold.deploy.atomic import write_text as atomic_write_text
    from freehold.deploy.cli.common import load_cluster
    from freehold.deploy.migrate import dns as d
    from freehold.roles.dns.config import DnsConfigError, extra_records, records_path, zone

    cluster = load_cluster(spec_path, option="--import")
    try:
        if zone(cluster) + "." != zname:
            fail(f"--import {spec_path}: roles.dns.zone is {zone(cluster)}, not the Route 53 "
                 f"zone {zname.rstrip('.')} — import into the spec of that domain")
        path = records_path(cluster)
        if path is None:
            fail(f"--import {spec_path}: roles.dns.records is not set — add `records: "
                 f"{Path(spec_path).stem}.records.zone` under roles.dns (the file to write)")
        plan = d.import_plan(cluster, zname, recs)
    except DnsConfigError as e:
        fail(str(e))
    text = d.records_text(zname, plan, f"Route 53 zone {zname}")
    before = path.read_text() if path.exists() else ""
    diff = list(difflib.unified_diff(before.splitlines(), text.splitlines(),
                                     str(path) if before else "/dev/null", str(path),
                                     lineterm=""))
    if not dry_run:
        atomic_write_text(path, text)
        try:
            extra_records(cluster)  # what the role will read: checked now, not at deploy
        except DnsConfigError as e:
            if before:
                atomic_write_text(path, before)
            else:
                path.unlink()
            fail(str(e))
        set_step(_state(manifest), "dns-import", "done", zone=zname, records_file=str(path),
                 kept=sum(1 for r in plan if r["action"] == "keep"))
    counts = {a: sum(1 for r in plan if r["action"] == a)
              for a in ("keep", "replace", "drop", "skip")}
    if json_out:
        print_json({"zone": zname, "records_file": str(path), "dry_run": dry_run,
                    "counts": counts, "plan": plan, "diff": diff})
        return
    t = Table(title=f"{zname} into {cluster.name}'s dns role: " + ", ".join(
        f"{n} {a}" for a, n in counts.items()) + (" (dry run)" if dry_run else ""))
    for col in ("action", "name", "type", "ttl", "values", "note"):
        t.add_column(col, overflow="fold")
    for r in sorted(plan, key=lambda r: ("replace", "drop", "skip", "keep").index(r["action"])):
        t.add_row(r["action"], r["name"], r["type"], str(r["ttl"] or ""),
                  ", ".join(r["values"]), r["note"])
    console.print(t)
    for line in diff:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if not dry_run:
        console.print(f"next: freehold deploy {spec_path} --roles dns, then "
                      f"freehold dns export {spec_path} for the registrar", highlight=False)


@app.command("status")
def status(
    manifest: Path = typer.Argument(..., help="migration manifest (from migrate discover)"),
    mark: list[str] = typer.Option(None, "--mark", help="record a step done outside migrate, "
                                   "e.g. --mark deploy=done (repeat)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The runbook with each step's state, so a second engineer can pick up."""
    from freehold.deploy.migrate.runbook import STEPS, runbook
    from freehold.deploy.migrate.state import STEP_STATES

    if not manifest.exists():
        fail(f"{manifest}: no such manifest — run freehold migrate discover --out {manifest}")
    names = [s for s, _ in STEPS]
    marks = []
    for m in mark or []:
        step, _, state = m.partition("=")
        if step not in names or state not in STEP_STATES:
            fail(f"--mark {m}: write STEP=STATE, STEP one of {', '.join(names)}, STATE one of "
                 f"{', '.join(STEP_STATES)}")
        marks.append((step, state))
    try:
        for step, state in marks:
            set_step(state_dir_for(manifest), step, state, pid=None, note="marked by hand")
        steps = runbook(manifest)
    except MigrateError as e:
        _fail(e)
    if json_out:
        print_json(steps)
        return
    colour = {"done": "green", "running": "yellow", "failed": "red", "pending": "dim"}
    t = Table(title=f"migration runbook ({manifest})")
    for col in ("#", "step", "state", "updated", "how", "detail"):
        t.add_column(col)
    for s in steps:
        t.add_row(str(s["n"]), s["step"], f"[{colour[s['state']]}]{s['state']}[/]",
                  s["updated"], escape(s["how"]), escape(s["detail"]))
    console.print(t)


@app.command("database")
def database(
    from_: str = typer.Option(..., "--from", envvar="FREEHOLD_MIGRATE_FROM",
                              help="postgresql://USER:PW@HOST:PORT/DB (source); from the "
                              "environment, the password stays out of `ps`"),
    to: str = typer.Option(..., "--to", help="cluster spec file (its primary through the "
                           "pgbouncer server's routing, over SSH) or postgresql:// URL"),
    do_cutover: bool = typer.Option(False, "--cutover", help="freeze the source, wait for the "
                                    "target to catch up, hand over, then verify"),
    rollback: bool = typer.Option(False, "--rollback", help="after a cut-over: let the "
                                  "source take writes again (point the app back at it)"),
    dump: bool = typer.Option(False, "--dump", help="pg_dump / pg_restore instead of "
                              "replication (writes must stop for the whole copy)"),
    jobs: int = typer.Option(4, min=1, max=32, help="parallel dump/restore jobs; "
                      "with replication, parallel builds of the deferred indexes"),
    workers: int = typer.Option(2, min=1, max=32, help="cutover: parallel verification "
                                "connections per side"),
    watch: float = typer.Option(0.0, min=0, max=86400, help="follow the initial copy for up "
                                "to this many seconds (ends when the copy is consistent)"),
    timeout: float = typer.Option(600.0, min=1, help="cutover: longest wait for zero lag (s)"),
    secrets: Path = SecretsOpt,
    json_out: bool = typer.Option(False, "--json"),
    manifest: Path = ManifestOpt,
) -> None:
    """Logical replication (initial copy, then streaming), --cutover, or --dump.

    Each run (and each second of --watch) also brings over what logical replication does not
    carry: the partitions and the tables the source created since, and the deferred indexes
    once the copy is in."""
    from freehold.deploy.cli import migrate_db
    from freehold.deploy.migrate import database as db
    from freehold.deploy.migrate.targets import database_target

    if not from_.startswith(("postgresql://", "postgres://")):
        fail(f"--from {from_}: not a PostgreSQL URL — write postgresql://USER:PW@HOST:PORT/DB")
    if sum((do_cutover, rollback, dump)) > 1:
        fail("--cutover, --rollback, --dump: give one of them")
    sd = _state(manifest)
    step = "database-cutover" if do_cutover or rollback else "database"
    try:
        if rollback:
            db.unfreeze(from_)
            set_step(sd, "database-cutover", "failed", error="rolled back: source writable")
            console.print("source takes writes again: point the app back at it")
            return
        with database_target(to, secrets) as dst:
            if do_cutover:
                migrate_db.cutover(from_, dst, timeout, workers, json_out, sd)
            else:
                migrate_db.copy_database(from_, dst, dump, jobs, watch, json_out, sd)
    except MigrateError as e:
        set_step(sd, step, "failed", error=str(e)[:200])
        _fail(e)


@app.command("plan")
def plan(
    manifest: Path = typer.Argument(..., help="manifest from migrate discover"),
    emit_spec: Path = typer.Option(None, "--emit-spec", help="write a cluster spec here"),
    name: str = typer.Option("freehold", help="cluster name in the spec"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Size the owned cluster and print the ordered runbook."""
    import yaml

    from freehold.deploy.atomic import write_text as atomic_write_text
    from freehold.deploy.migrate import sizing as p
    from freehold.deploy.migrate.runbook import STEPS

    try:
        doc = yaml.safe_load(manifest.read_text())
    except FileNotFoundError:
        fail(f"{manifest}: no such manifest — run freehold migrate discover --out {manifest}")
    except yaml.YAMLError as e:
        fail(f"{manifest}: not valid YAML ({str(e).splitlines()[0]}) — rerun migrate discover")
    if not isinstance(doc, dict) or doc.get("kind") != "freehold-migration-manifest":
        fail(f"{manifest}: not a migration manifest — rerun freehold migrate discover")
    servers = p.size(doc)
    if emit_spec:
        atomic_write_text(emit_spec, yaml.safe_dump(p.emit_spec(name, servers), sort_keys=False))
    set_step(state_dir_for(manifest), "plan", "done", servers=sum(servers.values()))
    if json_out:
        print_json({"servers": servers, "runbook": [s for s, _ in STEPS]})
        return
    t = Table(title=f"owned cluster: {sum(servers.values())} servers")
    t.add_column("role")
    t.add_column("servers", justify="right")
    for role, n in servers.items():
        t.add_row(role, str(n))
    console.print(t)
    r = Table(title="runbook")
    r.add_column("#")
    r.add_column("step")
    r.add_column("how")
    for i, (s, how) in enumerate(STEPS, start=1):
        r.add_row(str(i), s, escape(how))
    console.print(r)
