"""Fetching a remote load run's results: files Locust did not write are skipped, other errors
are retried once and then reported (they used to be swallowed, leaving "no step results" with
no reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.loadtest.remote import RESULT_FILES, fetch

pytestmark = pytest.mark.unit


class FakeConn:
    def __init__(self, files: dict[str, bytes], flaky: dict[str, int]) -> None:
        self.files, self.flaky, self.calls = files, flaky, 0

    def get(self, remote: str, local: str) -> None:
        self.calls += 1
        name = remote.rsplit("/", 1)[1]
        if self.flaky.get(name, 0) > 0:
            self.flaky[name] -= 1
            raise OSError("Socket is closed")
        if name not in self.files:
            raise FileNotFoundError(2, "No such file")
        Path(local).write_bytes(self.files[name])


def test_fetch_skips_missing_retries_and_reports(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("deploy.loadtest.remote.time.sleep", lambda _s: None)
    conn = FakeConn({"steps.json": b"[]", "master.out": b"ok", "report.html": b"<html>"},
                    {"steps.json": 1, "master.out": 5})
    errors = fetch(conn, "/opt/run/out", tmp_path)
    assert (tmp_path / "steps.json").read_bytes() == b"[]"  # second try
    assert (tmp_path / "report.html").exists()
    assert not (tmp_path / "locust_stats.csv").exists()  # never written: skipped, no error
    assert errors == ["master.out: OSError: Socket is closed"]
    assert conn.calls == len(RESULT_FILES) + 2
