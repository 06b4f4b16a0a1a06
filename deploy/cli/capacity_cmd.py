"""`freehold capacity`: accounts -> servers per role (issue 2).

    freehold capacity --accounts 10M [--profile FILE] [--compare 4M,10M] [--headroom X]
                      [--emit-spec FILE [--min-servers N] [--name NAME]] [--pessimistic] [--json]

Without a whole-mix measurement of the app (loadgen/measurements/calibration.json, written by
`freehold loadtest calibrate`) it refuses; `--pessimistic` plans with the profile's cited,
deliberately low figure instead and says so at the top of the plan.

Exit codes: 0 a plan, 2 bad input (one line naming the field and the fix).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from freehold.deploy.cli.common import console, fail, print_json
from freehold.deploy.spec.models import NAME_PATTERN

if TYPE_CHECKING:
    from freehold.deploy.capacity.model import CapacityPlan

MAX_HEADROOM = 100.0


def _accounts(text: str, option: str) -> int:
    from freehold.deploy.capacity import parse_accounts

    try:
        return parse_accounts(text)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def capacity(
    accounts: str = typer.Option("10M", "--accounts", help="Accounts, e.g. 4M or 10M."),
    profile: Path | None = typer.Option(None, "--profile", help="Capacity profile YAML "
                                        "(default loadgen/profiles/default.yaml)."),
    compare: str | None = typer.Option(None, "--compare", help="Plans side by side, e.g. 4M,10M"),
    headroom: float = typer.Option(1.0, "--headroom",
                                   help="Size for this multiple of the planned load (>= 1)."),
    emit_spec: Path | None = typer.Option(None, "--emit-spec", help="Write a cluster spec "
                                          "sized by the plan to this file."),
    min_servers: int = typer.Option(0, "--min-servers", min=0, help="With --emit-spec: raise "
                                    "the headroom until the spec has at least this many."),
    name: str = typer.Option("production", "--name", help="Cluster name in the emitted spec."),
    pessimistic: bool = typer.Option(False, "--pessimistic", help="Without a whole-mix "
                                     "calibration, plan with the profile's cited pessimistic "
                                     "per-core figure (said loudly) instead of refusing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Turn a number of accounts into servers per role, with every input's source."""
    from freehold.deploy.capacity import CapacityProfileError, plan_for, plan_with_at_least

    n = _accounts(accounts, "--accounts")
    others = [_accounts(t, "--compare") for t in compare.split(",")] if compare else []
    if compare is not None and not others:
        fail("--compare: give accounts separated by commas, e.g. 4M,10M")
    if not 1 <= headroom <= MAX_HEADROOM:
        fail(f"--headroom: {headroom:g} — give a multiple between 1 and {MAX_HEADROOM:g}")
    if not re.fullmatch(NAME_PATTERN, name):
        fail(f"--name: {name!r} is not a spec name — use lower-case letters, digits, - and _")
    if min_servers and emit_spec is None:
        fail("--min-servers: only with --emit-spec FILE (it sizes the emitted spec)")
    try:
        plan = base = plan_for(n, profile, headroom, pessimistic)
        if min_servers:
            plan = plan_with_at_least(n, min_servers, profile, headroom, MAX_HEADROOM,
                                      pessimistic)
        plans = [plan_for(a, profile, headroom, pessimistic) for a in others]
    except CapacityProfileError as exc:
        fail(str(exc))
    written = None
    if emit_spec is not None:
        args = ["freehold", "capacity", "--accounts", accounts]
        args += ["--profile", str(profile)] if profile else []
        args += ["--headroom", f"{headroom:g}"] if headroom != 1 else []
        args += ["--min-servers", str(min_servers)] if min_servers else []
        args += ["--pessimistic"] if pessimistic else []
        args += ["--name", name, "--emit-spec", str(emit_spec)]
        written = _emit(plan, base, emit_spec, name, shlex.join(args))
    if json_out:
        doc = plan.to_json()
        if plans:
            doc["compare"] = [p.to_json() for p in plans]
        if written:
            doc["emitted_spec"] = written
        print_json(doc)
        return
    from freehold.deploy.capacity.report import compare_table, print_plan

    console.print(f"[bold]capacity plan for {n:,} accounts[/bold]", highlight=False)
    for note in plan.notes:  # said first and again at the end: nobody should miss it
        if note.startswith("PESSIMISTIC"):
            console.print(f"[bold red]{note}[/bold red]", highlight=False)
    print_plan(console, plan)
    if plans:
        by_accounts = {p.accounts: p for p in [*plans, plan]}
        console.print(compare_table([by_accounts[a] for a in sorted(by_accounts)]))
    if written:
        console.print(f"wrote {written['file']}: {written['servers']} servers in "
                      f"{written['sites']} sites at {written['providers']} providers "
                      f"(headroom x{plan.headroom:g}); check it with `freehold inventory "
                      f"check {written['file']}`", highlight=False)


def _emit(plan: CapacityPlan, base: CapacityPlan, path: Path, name: str, command: str
          ) -> dict[str, Any]:
    from freehold.deploy.capacity.emit import spec_doc, spec_header, spec_yaml
    from freehold.deploy.spec import SpecError, parse_spec

    try:
        doc = spec_doc(plan, name)
    except ValueError as exc:
        fail(f"--emit-spec: {exc}")
    try:
        spec = parse_spec(doc, path)
    except SpecError as exc:
        fail(f"--emit-spec: the sized spec does not validate ({exc.problems[0]}) — report this")
    if not path.parent.exists():
        fail(f"--emit-spec: {path.parent} does not exist — create it or pick another path")
    tmp = path.with_name(path.name + ".tmp")
    body = spec_yaml(doc)
    tmp.write_text(spec_header(plan, base, command) + body)
    tmp.replace(path)
    return {"file": str(path), "servers": len(spec.servers), "sites": len(spec.sites),
            "providers": len(spec.providers), "headroom": plan.headroom}
