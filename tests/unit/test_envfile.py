"""The systemd EnvironmentFile writer (roles.common.envfile), read back the way systemd reads it
(tests/unit/systemd_envfile.py)."""

from __future__ import annotations

import pytest

from freehold.roles.common.envfile import environment_file, quote_env_value
from tests.unit.systemd_envfile import read_environment_file


def test_reader_follows_systemds_documented_examples() -> None:
    # systemd.exec(5): bare values keep inner whitespace and drop outer, "\\" is "\", a
    # trailing backslash joins lines; '…' keeps everything; "…" unescapes " \ ` $ only
    text = ('A=  a b  \nB=x\\\\y\nC=one\\\ntwo\nD=\'$x "y" \\z\'\nE="\\$x \\"y\\" \\z"\n'
            "# F=comment\n")
    assert read_environment_file(text) == {"A": "a b", "B": "x\\y", "C": "onetwo",
                                           "D": '$x "y" \\z', "E": '$x "y" \\z'}


HARD_VALUES = ["with spaces", "  leading and trailing  ", 'double "quotes"', "single 'quotes'",
               "back\\slash\\", "trailing backslash\\", "$HOME and ${HOME} and $$", "100% %n %i",
               "`id`", "postgresql://u:p%40ss@h1:5000,h2:5000/db?x=1&y=2", "", "#not a comment",
               "a=b=c", "ünïcode ✓"]


@pytest.mark.parametrize("value", HARD_VALUES)
def test_values_come_back_exactly(value: str) -> None:
    text = environment_file({"FREEHOLD_X": value, "NEXT": "after"}, "header")
    assert read_environment_file(text) == {"FREEHOLD_X": value, "NEXT": "after"}


def test_all_values_together_in_order() -> None:
    values = {f"V{i}": v for i, v in enumerate(HARD_VALUES)}
    text = environment_file(values, "Managed by freehold: test")
    assert text.startswith("# Managed by freehold: test\n") and text.endswith("\n")
    assert read_environment_file(text) == values
    assert [line.split("=", 1)[0] for line in text.splitlines()[1:]] == list(values)


@pytest.mark.parametrize("value", ["two\nlines", "FREEHOLD_A=1\nFREEHOLD_DATABASE_URL=x",
                                   "carriage\rreturn", "nul\x00", "escape\x1b[0m", "del\x7f"])
def test_control_characters_are_refused_with_the_variable_name(value: str) -> None:
    with pytest.raises(ValueError) as e:
        environment_file({"FREEHOLD_BOOTSTRAP_ADMINS": value}, "h")
    assert str(e.value).startswith("FREEHOLD_BOOTSTRAP_ADMINS: the value holds the control")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["", "1X", "A B", "A=B", "A\nB", "A-B"])
def test_bad_variable_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not a variable name"):
        environment_file({name: "v"}, "h")


def test_quoting_is_double_quotes_with_four_escapes() -> None:
    assert quote_env_value("X", 'a"b\\c`d$e%f\'g') == '"a\\"b\\\\c\\`d\\$e%f\'g"'


def test_monitoring_files_use_the_same_writer() -> None:
    from freehold.deploy.spec import load_spec
    from freehold.roles.monitoring.config import env_file, node_exporter_args
    from tests.unit.test_spec_strings import LAB

    args = node_exporter_args(load_spec(LAB).servers[0])
    assert "$|" in args          # the exporter's mount-point regex holds a '$'
    text = env_file({"ARGS": args, "REDIS_PASSWORD": 'p"w$'}, "node exporter")
    assert read_environment_file(text) == {"ARGS": args, "REDIS_PASSWORD": 'p"w$'}
