"""The mesh grows without dropping a tunnel (issue 20): a bare 6-server lab over the 4 sites of
`freehold lab scale --no-core` gets base and mesh; a ping runs over an existing cross-site tunnel
while 2 servers are added to the spec, booted and the mesh redeployed (every peer list
re-rendered and applied in place by the unit's reload, roles/mesh/files/wg_sync.py); no ping
may be lost, no interface restarted, and
pings between random pairs of servers in different sites all answer.

Its own lab: FREEHOLD_MESH_TEST_NAME (default meshscale) on FREEHOLD_MESH_TEST_NET (default
10.210.64.0/21), apart from the main lab and the small labs.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freehold.deploy.lab import Lab
from freehold.deploy.lab.scale import ScaleRequest, render_spec
from freehold.deploy.provision.drill import deploy_subprocess
from freehold.deploy.rehearsal import Pinger, lost_pings, ping_replies, wg_identity
from freehold.deploy.spec import load_spec
from tests.lab.cli import LabSecrets

ROOT = Path(__file__).resolve().parents[2]
NAME = os.environ.get("FREEHOLD_MESH_TEST_NAME", "meshscale")
NET = ipaddress.IPv4Network(os.environ.get("FREEHOLD_MESH_TEST_NET", "10.210.64.0/21"))
FIRST, ADDED = 6, 2
ROLES = ["--roles", "base,mesh"]


def write_spec(path: Path, servers: int) -> Path:
    like = load_spec(ROOT / "inventories" / "production-example.yaml")
    req = ScaleRequest(servers=servers, name=NAME, net=NET, core=False)
    path.write_text(render_spec(req, like, str(path)))
    return path


@pytest.fixture(scope="module")
def grown(lab_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Deploy 6, start a ping, add 2 and redeploy; what was seen along the way."""
    spec_path = write_spec(tmp_path_factory.mktemp("mesh") / "mesh.yaml", FIRST + ADDED)
    Lab.from_spec(spec_path).down()              # a run killed midway leaves nothing behind
    write_spec(spec_path, FIRST)
    lab = Lab.from_spec(spec_path)
    seen: dict[str, Any] = {"lab": lab}
    pinger: Pinger | None = None
    try:
        lab.up(timeout=120)
        secrets = LabSecrets.of(lab)
        started = time.monotonic()
        code, doc = deploy_subprocess(spec_path, secrets.path, secrets.key, ROLES, timeout=600)
        assert code == 0, doc.get("problems") or doc
        seen["deploy_s"] = time.monotonic() - started
        spec6 = load_spec(spec_path)
        seen["first"] = spec6
        seen["before"] = {s.name: wg_identity(lab, s.name) for s in spec6.servers}
        target = spec6.server("pdx-n001")        # 62 ms away: through the router's delay line
        pinger = Pinger(lab, "ash-n001", target.mesh_address, max_s=300)
        pinger.start()

        write_spec(spec_path, FIRST + ADDED)     # 2 more servers, appended per site
        lab = Lab.from_spec(spec_path)
        seen["lab"] = lab
        started = time.monotonic()
        lab.up(timeout=120)                      # boots the 2 new ones, leaves the 6 alone
        seen["boot_s"] = time.monotonic() - started
        started = time.monotonic()
        code, doc = deploy_subprocess(spec_path, secrets.path, secrets.key, ROLES, timeout=600)
        seen["redeploy_s"] = time.monotonic() - started
        seen["redeploy"] = (code, doc)
        seen["ping"] = pinger.stop()             # after the last pings' answers
        seen["spec"] = load_spec(spec_path)
        seen["after"] = {s.name: wg_identity(lab, s.name) for s in seen["spec"].servers}
        seen["reload_log"] = lab.run("ash-n001", "journalctl -q --no-pager -o cat "
                                                 "-u wg-quick@wg0 | grep '^wg0: ' | tail -1").stdout
        yield seen
    finally:
        if pinger is not None:
            pinger.stop()
        lab.down()


@pytest.mark.timeout(600)
def test_redeploy_adds_the_peers_everywhere(grown: dict[str, Any]) -> None:
    code, doc = grown["redeploy"]
    assert code == 0, doc.get("problems") or doc
    spec = grown["spec"]
    assert len(spec.servers) == FIRST + ADDED
    for name, (_, _, peers) in grown["after"].items():
        assert peers == len(spec.servers) - 1, f"{name}: {peers} peers"
    print(f"first deploy of {FIRST}: {grown['deploy_s']:.1f} s; mesh redeploy of "
          f"{len(spec.servers)} servers ({ADDED} new, bare): {grown['redeploy_s']:.1f} s; boot "
          f"of the new ones {grown['boot_s']:.1f} s")


@pytest.mark.timeout(600)
def test_no_tunnel_restarted_and_no_ping_lost(grown: dict[str, Any]) -> None:
    for name, (invocation, pid, _) in grown["before"].items():
        now_inv, now_pid, _ = grown["after"][name]
        assert (now_inv, now_pid) == (invocation, pid), f"{name}: wg-quick@wg0 restarted"
    got = ping_replies(grown["ping"])
    assert len(got) >= 5 * grown["redeploy_s"] * 0.8, grown["ping"][-400:]
    lost = lost_pings(grown["ping"])
    assert lost == [], f"icmp_seq lost over the existing tunnel: {lost[:20]}"
    print(f"continuous ping: {max(got)} sent at 5/s across the change, 0 lost")


def test_the_reload_touched_only_the_new_peers(grown: dict[str, Any]) -> None:
    """wg_sync.py, the unit's reload, set the 2 new peers and left the 5 others alone."""
    assert grown["reload_log"].strip() == \
        f"wg0: {ADDED} added, 0 changed, 0 removed, {FIRST - 1} kept", grown["reload_log"]


@pytest.mark.timeout(600)
def test_random_pairs_across_sites_answer(grown: dict[str, Any]) -> None:
    lab, spec = grown["lab"], grown["spec"]
    rng = random.Random(20)
    pairs = [(a, b) for a in spec.servers for b in spec.servers if a.site != b.site]
    failed = []
    for a, b in rng.sample(pairs, 10):
        r = lab.run(a.name, f"ping -n -c2 -W2 -q {b.mesh_address}")
        if r.returncode != 0:
            failed.append(f"{a.name} -> {b.name}")
    assert failed == []
