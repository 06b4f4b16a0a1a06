"""Every command that reads a cluster spec defaults to the local lab's (inventories/lab.yaml),
as `freehold up` does, and a missing spec file is the one one-line error (deploy.cli.common)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from freehold.deploy.cli import app

DEFAULT_SPEC = Path("inventories/lab.yaml")  # the lab spec `freehold up` uses

runner = CliRunner()

# each command reading a spec, with what else it needs to get as far as reading it
SPEC_COMMANDS: dict[str, list[str]] = {
    "status": [], "failover": [], "plan": [], "deploy": ["--yes"], "rollback": ["--yes"],
    "backup restore-drill": [], "inventory check": [], "inventory list": [],
    "loadtest seed": ["--accounts", "100"], "loadtest run": [], "loadtest calibrate": [],
}
# commands that take it as --spec (the lab's own)
SPEC_OPTION_COMMANDS = ["up", "lab up", "lab down", "lab status"]


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf command by its full name (typer's click-like groups and commands)."""
    out: dict[str, Any] = {}
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(cmd, "commands"):
            out.update(_commands(cmd, f"{full} "))
        else:
            out[full] = cmd
    return out


def test_every_spec_argument_defaults_to_the_lab_spec() -> None:
    found = {}
    for name, cmd in _commands(typer.main.get_command(app)).items():
        for p in cmd.params:
            if p.param_type_name == "argument" and (
                    p.name == "spec" or (p.name == "target" and name.startswith("loadtest"))):
                found[name] = p
    assert set(SPEC_COMMANDS) <= set(found), set(SPEC_COMMANDS) - set(found)
    for name, p in found.items():
        assert not p.required, f"freehold {name}: SPEC is required"
        assert str(p.default) == str(DEFAULT_SPEC), (name, p.default)


@pytest.mark.parametrize("command", sorted(SPEC_COMMANDS))
def test_help_shows_the_default(command: str) -> None:
    r = runner.invoke(app, [*command.split(), "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert f"[default: {DEFAULT_SPEC}]" in r.output


@pytest.mark.parametrize("command", sorted(SPEC_COMMANDS) + SPEC_OPTION_COMMANDS)
def test_without_a_spec_file_one_line_error(command: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Run where there is no inventories/lab.yaml: the default is used (no "Missing argument")
    and its absence is the one line naming the file and the fix."""
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, [*command.split(), *SPEC_COMMANDS.get(command, [])])
    assert r.exit_code == 2, r.output
    assert "Missing argument" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"{DEFAULT_SPEC}: no such spec file — pass the path of a cluster spec" in lines[0]
    assert "run from the repository's top folder" in lines[0]


@pytest.mark.parametrize("command", ["status", "deploy", "loadtest run"])
def test_a_named_missing_spec_is_the_same_error(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    r = runner.invoke(app, [*command.split(), str(missing), *SPEC_COMMANDS[command]])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines() == [
        f"error: {missing}: no such spec file — pass the path of a cluster spec (YAML) such as "
        f"{DEFAULT_SPEC}" + (" or an app URL http://HOST:PORT" if command == "loadtest run"
                             else "")]
