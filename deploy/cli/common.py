"""Helpers shared by every CLI command: one-line errors, JSON output, 'not done yet', and the
SPEC argument with its loader (every command that reads a cluster spec defaults to the local
lab's spec, as `freehold up` does)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from freehold.deploy.spec import ClusterSpec

# Written to a file or a pipe (a CI log, `| tee`), rich would fold tables at 80 columns and
# truncate every cell of the wide ones (the drills' table) to "1…": give them room unless the
# caller set COLUMNS.
console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = 200
err_console = Console(stderr=True)

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line on stderr naming what is wrong and the fix, then exit."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fail_lines(lines: list[str], code: int = EXIT_USAGE) -> NoReturn:
    for line in lines:
        err_console.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(doc: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


DEFAULT_SPEC = Path("inventories/lab.yaml")
SPEC_HELP = "Cluster spec (YAML)."
# a command's SPEC argument: `spec: SpecArg = DEFAULT_SPEC`
SpecArg = Annotated[Path, typer.Argument(help=SPEC_HELP, show_default=True)]


def missing_spec(spec: Path, *, option: str = "", also: str = "") -> str | None:
    """The one 'no such spec file' message when `spec` is not a file, else None; `option`
    names the flag that gave it (e.g. "--spec"), `also` another kind of value accepted."""
    if spec.is_file():
        return None
    what = f"{option} {spec}" if option else str(spec)
    hint = (" (the default is the local lab's spec: run from the repository's top folder)"
            if spec == DEFAULT_SPEC else f" such as {DEFAULT_SPEC}")
    return f"{what}: no such spec file — pass the path of a cluster spec (YAML){hint}{also}"


def require_spec_file(spec: Path, *, option: str = "", also: str = "") -> None:
    """Exit 2 with the one 'no such spec file' line when `spec` is not a file."""
    if (message := missing_spec(spec, option=option, also=also)) is not None:
        fail(message)


def load_cluster(spec: Path, *, option: str = "", json_out: bool = False) -> ClusterSpec:
    """The validated spec, or one line per problem on stderr (exit 2); with `json_out` the
    problems are also printed as one JSON document on stdout."""
    from freehold.deploy.spec import SpecError, load_spec

    missing = missing_spec(spec, option=option)
    try:
        if missing is not None:
            raise SpecError([missing])
        return load_spec(spec)
    except SpecError as e:
        if json_out:
            print_json({"file": str(spec), "ok": False, "errors": e.problems})
        fail_lines(e.problems)
