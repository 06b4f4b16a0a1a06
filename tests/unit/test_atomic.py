"""deploy.atomic: whole files or nothing, created with their mode (the one place for it)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from freehold.deploy.atomic import write_bytes, write_json, write_text


def test_written_whole_with_its_mode(tmp_path: Path) -> None:
    secret = tmp_path / "deep" / "lab.secrets"
    write_bytes(secret, b"token\n")
    assert secret.read_bytes() == b"token\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    public = tmp_path / "lab.known_hosts"
    write_text(public, "a ssh-ed25519 AAAA\n", 0o644)
    assert stat.S_IMODE(public.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json(path, {"done": 1})
    with pytest.raises(TypeError):
        write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == '{\n "done": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
