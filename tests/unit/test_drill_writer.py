"""The failover drill's row writer: a lost database is logged and retried (that is what the
drill measures); a bug stops it and is raised, never counted as an outage."""

from __future__ import annotations

import socket
import time

import pytest

from freehold.deploy.provision.drill import RowWriter


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_database_nobody_answers_is_logged_and_retried() -> None:
    w = RowWriter(f"host=127.0.0.1 port={closed_port()} dbname=x connect_timeout=2", pause=0)
    w.start()
    deadline = time.monotonic() + 10
    while len(w.log.errors) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    w.stop_event.set()
    w.join(timeout=10)  # no exception: the database's loss is what the drill measures
    assert len(w.log.errors) >= 2 and "OperationalError" in w.log.errors[0][1]
    assert not w.log.acked


def test_a_bug_in_the_writer_is_raised_not_logged_as_an_outage() -> None:
    w = RowWriter(None, pause=0)  # type: ignore[arg-type]  # psycopg: AttributeError
    w.start()
    with pytest.raises(RuntimeError, match="the drill's writer failed: AttributeError"):
        w.join(timeout=10)
    assert not w.log.errors
