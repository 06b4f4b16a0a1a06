from typer.testing import CliRunner

from freehold.deploy.cli import app

runner = CliRunner()

COMMANDS = ["inventory", "plan", "deploy", "status", "capacity", "loadtest", "lab",
            "failover", "migrate"]


def test_every_command_has_help() -> None:
    for cmd in COMMANDS:
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0, (cmd, r.output)
        assert "Usage" in r.output
