"""A new cluster's leader begins in roles.postgres.primary_site: that member starts first, the
others wait (bounded) for a primary; the DCS settings a running cluster keeps in etcd."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from freehold.deploy.spec import loads_spec
from freehold.roles.postgres import primary_urls, wait_primary_command
from freehold.roles.postgres.config import dynamic_settings, primary_site_member

SPEC = """
name: boot
providers: [{name: p, kind: owned}]
sites: [{name: a, provider: p}, {name: b, provider: p}, {name: c, provider: p}]
roles: {postgres: {primary_site: PRIMARY}}
servers:
  - {name: a1, site: a, address: 10.0.0.1, roles: [etcd]}
  - {name: b1, site: b, address: 10.0.1.1, roles: [postgres, etcd]}
  - {name: c1, site: c, address: 10.0.2.1, roles: [postgres, etcd]}
  - {name: c2, site: c, address: 10.0.2.2, roles: [postgres]}
"""


def test_the_member_that_starts_first_is_in_the_primary_site() -> None:
    assert primary_site_member(loads_spec(SPEC.replace("PRIMARY", "c"))) == "c1"
    assert primary_site_member(loads_spec(SPEC.replace("PRIMARY", "b"))) == "b1"
    spec = loads_spec(SPEC.replace("PRIMARY", "b"))
    assert len(primary_urls(spec)) == 3
    assert all(u.endswith(":8008/primary") for u in primary_urls(spec))


class _Primary(BaseHTTPRequestHandler):
    answers: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture()
def patroni() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Primary)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/primary"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def test_a_joining_member_waits_until_a_primary_answers(patroni: str) -> None:
    _Primary.answers = [503, 503, 503]  # bootstrapping: not primary yet
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-c", wait_primary_command([patroni], timeout_s=30)],
                       capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0 and not r.stderr
    assert _Primary.answers == []  # it asked until the 200
    assert 2.0 <= took < 20


def test_with_no_primary_it_starts_anyway_after_its_bound() -> None:
    # a closed port on loopback: no member answers
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-c", wait_primary_command(["http://127.0.0.1:9/primary"],
                                                           timeout_s=3)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "no primary after 3 s — starting anyway" in r.stderr
    assert 2.0 <= time.monotonic() - t0 < 30  # the bound counts whole seconds (date +%s)


def test_dcs_settings_keep_patronis_rule_and_detect_within_the_target() -> None:
    d = dynamic_settings()
    assert d["loop_wait"] + 2 * d["retry_timeout"] <= d["ttl"]
    # a dead leader's key expires at most ttl after the loss: leaves room for promotion and
    # the routers inside the 15 s target of issue 21
    assert d["ttl"] <= 10
    # a 2 s blip stays inside retry_timeout (no failover)
    assert d["retry_timeout"] > 2
    # etcd losing its quorum leaves the leader primary while every member answers it
    assert d["failsafe_mode"] is True
    # the role sets them with `patronictl edit-config -s k=<JSON>`, which reads the value as
    # YAML: each keeps its type (failsafe_mode true, not 1)
    import json

    import yaml

    assert all(type(yaml.safe_load(json.dumps(v))) is type(v) for v in d.values())


def test_watchdog_fires_before_the_key_expires_and_after_a_slow_loop() -> None:
    from freehold.roles.postgres.config import WATCHDOG_SAFETY_MARGIN
    d = dynamic_settings()
    fires_after = d["ttl"] - WATCHDOG_SAFETY_MARGIN  # Patroni's watchdog timeout
    assert d["loop_wait"] + d["retry_timeout"] < fires_after < d["ttl"]


def test_a_leader_cut_off_demotes_before_its_key_can_expire() -> None:
    """failsafe_mode: a leader that cannot update its key asks every member (POST /failsafe,
    2 s timeout, 1 retry) before it demotes. Unreachable members (a partition) must not keep
    it primary past its key's expiry: with ttl 8 / loop_wait 1 the lab's site-partition drill
    had two writable primaries."""
    from freehold.roles.postgres.config import FAILSAFE_ASK_S
    d = dynamic_settings()
    assert d["loop_wait"] + d["retry_timeout"] + FAILSAFE_ASK_S < d["ttl"]
