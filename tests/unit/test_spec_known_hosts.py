"""The spec's known_hosts field: the files host keys are checked against."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.deploy.spec import SpecError, load_spec

SPEC = """\
name: kh
providers: [{name: p1, kind: rented}]
sites: [{name: a, provider: p1}]
servers: [{name: s1, site: a, address: 10.0.0.5}]
"""


def test_default_is_the_file_beside_the_spec_then_the_users(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "prod.yaml"
    path.write_text(SPEC)
    assert load_spec(path).known_hosts == [str(tmp_path / "prod.known_hosts"),
                                           str(tmp_path / "home" / ".ssh" / "known_hosts")]


def test_given_files_are_relative_to_the_spec(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "prod.yaml"
    path.write_text(SPEC + "known_hosts: [keys/prod.hosts, ~/pinned, /etc/ssh/ssh_known_hosts]\n")
    assert load_spec(path).known_hosts == [str(tmp_path / "keys" / "prod.hosts"),
                                           str(tmp_path / "home" / "pinned"),
                                           "/etc/ssh/ssh_known_hosts"]


@pytest.mark.parametrize(("value", "says"), [('["bad\\nname"]', "is not a file path"),
                                             ("[]", "at least 1 item"),
                                             ('"one-file"', "valid list")])
def test_a_bad_value_is_one_line_naming_the_field(tmp_path: Path, value: str, says: str
                                                  ) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(SPEC + f"known_hosts: {value}\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    [problem] = e.value.problems
    assert "prod.yaml:5: known_hosts: " in problem and says in problem
    assert "\n" not in problem
