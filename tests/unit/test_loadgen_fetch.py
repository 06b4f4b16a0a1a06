"""Fetching a remote load run's results: files Locust did not write are skipped; a broken SFTP
client is dropped (the connection closed) and the copy tried again; what still fails is reported
(errors used to be swallowed, leaving "no step results" with no reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.deploy.loadtest.remote import RESULT_FILES, fetch

pytestmark = pytest.mark.unit


class FakeConn:
    """Like a Fabric Connection: one cached SFTP client, which stays broken once its transport
    dropped until `close()` throws it away; `broken_opens` transports die again on use."""

    def __init__(self, files: dict[str, bytes], broken_opens: int) -> None:
        self.files, self.broken_opens = files, broken_opens
        self.sftp_ok, self.calls, self.closes = False, 0, 0

    def close(self) -> None:
        self.closes += 1
        self.sftp_ok = None  # type: ignore[assignment]  # no client: the next get makes one

    def get(self, remote: str, local: str) -> None:
        self.calls += 1
        if self.sftp_ok is None:  # a fresh client on a fresh transport
            self.sftp_ok = self.broken_opens <= 0
            self.broken_opens -= 1
        if not self.sftp_ok:
            raise OSError("Socket is closed")
        name = remote.rsplit("/", 1)[1]
        if name not in self.files:
            raise FileNotFoundError(2, "No such file")
        Path(local).write_bytes(self.files[name])


FILES = {"steps.json": b"[]", "master.out": b"ok", "report.html": b"<html>"}


def test_a_stale_sftp_client_is_replaced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("freehold.deploy.loadtest.remote.time.sleep", lambda _s: None)
    conn = FakeConn(FILES, broken_opens=0)  # the pushed-with client is dead; a new one works
    errors = fetch(conn, "/opt/run/out", tmp_path)
    assert errors == []
    assert (tmp_path / "steps.json").read_bytes() == b"[]"
    assert (tmp_path / "report.html").exists() and (tmp_path / "master.out").exists()
    assert not (tmp_path / "locust_stats.csv").exists()  # never written: skipped, no error
    assert conn.closes == 1 and conn.calls == len(RESULT_FILES) + 1


def test_what_keeps_failing_is_reported_per_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("freehold.deploy.loadtest.remote.time.sleep", lambda _s: None)
    conn = FakeConn(FILES, broken_opens=10**6)  # the server's SFTP is gone for good
    errors = fetch(conn, "/opt/run/out", tmp_path, attempts=3)
    assert errors == [f"{n}: OSError: Socket is closed" for n in RESULT_FILES]
    assert conn.calls == 3 * len(RESULT_FILES)
    assert not any(tmp_path.iterdir())
