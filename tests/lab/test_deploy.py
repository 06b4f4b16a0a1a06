"""`freehold deploy` on the lab: from bare Debian 12 servers to a data tier that fails over.

Module-scoped: the lab (inventories/lab.yaml) is brought up when it is not (and taken down
only then), deployed once from bare, checked, deployed again (zero changes), then the failover
drills run. Secrets: the `lab_secrets` fixture (tests/lab/cli.py), shared with test_platform.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from freehold.deploy.secrets import Secrets, SecretStore
from freehold.deploy.spec import ClusterSpec, load_spec
from tests.lab.cli import LabSecrets
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
LAB_SPEC = ROOT / "inventories" / "lab.yaml"
FREEHOLD = [sys.executable, "-m", "freehold.deploy"]
# the roles of issue 5 (the data tier); roles added later to ROLE_ORDER have their own tests
DATA_TIER = ("base", "mesh", "etcd", "postgres", "pgbouncer", "redis", "media")
DATA_TIER_ARGS = ["--roles", ",".join(DATA_TIER)]


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(LAB_SPEC)


@pytest.fixture(scope="module")
def lab(main_lab: Any) -> Any:
    """The session's inventories/lab.yaml lab (tests/lab/conftest.py: brought up when it was
    not, and then taken down at the end of the session)."""
    return main_lab


def deploy_cli(args: list[str], lab_secrets: LabSecrets,
               timeout: float = 900) -> tuple[int, dict[str, Any]]:
    from freehold.deploy.provision.drill import deploy_subprocess

    return deploy_subprocess(LAB_SPEC, lab_secrets.path, lab_secrets.key, args, timeout=timeout)


@pytest.fixture(scope="module")
def first_deploy(lab: Any, lab_secrets: LabSecrets) -> dict[str, Any]:
    code, doc = deploy_cli(DATA_TIER_ARGS, lab_secrets, timeout=2400)
    doc["exit_code"] = code
    return doc


@pytest.fixture(scope="module")
def secrets(first_deploy: dict[str, Any], spec: ClusterSpec, lab_secrets: LabSecrets
            ) -> Secrets:
    return SecretStore(lab_secrets.path, spec.name, key=lab_secrets.key).load()


def run(lab: Any, host: str, cmd: str, timeout: float = 60) -> str:
    r = lab.run(host, cmd, timeout=timeout)
    assert r.returncode == 0, f"{host}: {cmd}: {r.stderr or r.stdout}"
    return r.stdout


# ---- first deploy ---------------------------------------------------------------------------

# bounded, but generous: a bare lab installs every package, and a shared 2-core machine under
# heavy load (seen here: load 40) runs it ~5x slower than CI's 273 s
@pytest.mark.timeout(2500)
def test_first_deploy_from_bare_servers(first_deploy: dict[str, Any], lab: Any) -> None:
    bad = [r for r in first_deploy["results"] if r["status"] in ("failed", "unreachable")]
    assert first_deploy["ok"] and first_deploy["exit_code"] == 0, (first_deploy["stopped"], bad)
    base = [r for r in first_deploy["results"] if r["role"] == "base"]
    if any(r["changed"] for r in base):  # servers were bare: everything was installed
        assert first_deploy["changed"] > 100
    assert {r["role"] for r in first_deploy["results"]} == set(DATA_TIER)


UNITS = {
    "etcd": [("etcd", "etcd")],
    "postgres": [("patroni", "postgres")],
    "pgbouncer": [("pgbouncer", "postgres"), ("freehold-pgrouter", "haproxy")],
    "redis": [("redis-server", "redis")],
    "media": [("freehold-weed-volume", "seaweedfs"), ("freehold-weed-filer", "seaweedfs")],
    "mesh": [("wg-quick@wg0", None)],
    "base": [("nftables", None), ("ssh", None)],
}


def test_services_up_enabled_restarting_unprivileged(first_deploy: dict[str, Any], lab: Any,
                                                     spec: ClusterSpec) -> None:
    for server in spec.servers:
        units = [(u, user) for role in server.roles for u, user in UNITS.get(role, [])]
        if server.name in {"a1", "b1", "c1"}:  # the SeaweedFS masters
            units.append(("freehold-weed-master", "seaweedfs"))
        names = " ".join(u for u, _ in units)
        out = run(lab, server.name, f"systemctl is-active {names}; systemctl is-enabled {names}")
        states = out.split()
        assert states == ["active"] * len(units) + ["enabled"] * len(units), (server.name, out)
        for unit, user in units:
            if user is None:
                continue
            props = run(lab, server.name, f"systemctl show -p User -p Restart -p MainPID {unit}")
            doc = dict(line.split("=", 1) for line in props.split())
            assert doc["Restart"] in ("always", "on-failure"), (server.name, unit, doc)
            owner = run(lab, server.name, f"ps -o user= -p {doc['MainPID']}").strip()
            assert owner == user, (server.name, unit, owner)


def _port_open(address: str, port: int, timeout: float = 1.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def test_ports_closed_outside_the_mesh(first_deploy: dict[str, Any], lab: Any,
                                       spec: ClusterSpec) -> None:
    a1, a2, b1 = spec.server("a1"), spec.server("a2"), spec.server("b1")
    assert _port_open(a1.public_address, 22)
    for server, port in [(a1, 2379), (a1, 5432), (a1, 8008), (a1, 6379), (a1, 9333),
                         (a1, 8333), (a2, 6432), (a2, 5000)]:
        assert not _port_open(server.public_address, port), (server.name, port)
    # another server reaches a1's Patroni over the mesh, not over its site address
    code = run(lab, "b1", f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 "
                          f"http://{a1.mesh_address}:8008/health || true")
    assert code.strip() in ("200", "503")
    blocked = lab.run("b1", f"curl -s --max-time 3 http://{a1.public_address}:8008/health",
                      timeout=30)
    assert blocked.returncode != 0
    assert b1.mesh_address != b1.public_address


def patroni_members(lab: Any, spec: ClusterSpec) -> list[dict[str, Any]]:
    from freehold.deploy.provision.drill import patroni_cluster

    return patroni_cluster(lab, spec)


def test_patroni_leader_and_synchronous_standby_in_another_site(
        first_deploy: dict[str, Any], lab: Any, spec: ClusterSpec) -> None:
    def ready() -> list[dict[str, Any]] | None:
        members = patroni_members(lab, spec)
        roles = [m.get("role") for m in members]
        if roles.count("leader") == 1 and "sync_standby" in roles and all(
                m.get("state") in ("running", "streaming") for m in members):
            return members
        return None

    members = wait_for("one leader and a synchronous standby", ready, 90, every=2)
    leader = next(m for m in members if m["role"] == "leader")
    sync = [m for m in members if m["role"] == "sync_standby"]
    assert len(members) == 3
    for m in sync:
        assert spec.server(m["name"]).site != spec.server(leader["name"]).site
    # a cluster that has never failed over (timeline 1: bootstrapped by this first deploy on a
    # fresh lab) has its leader in roles.postgres.primary_site: that member starts first
    if leader.get("timeline") == 1:
        from freehold.deploy.spec.placement import postgres_primary_site

        assert spec.server(leader["name"]).site == postgres_primary_site(spec), leader


def redis_nodes(lab: Any, host: str) -> list[dict[str, Any]]:
    from freehold.deploy.provision.drill import redis_cli

    out = redis_cli(lab, host, "CLUSTER NODES").stdout
    nodes = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8:
            nodes.append({"id": f[0], "address": f[1].split(":")[0], "flags": f[2],
                          "master": f[3], "slots": f[8:]})
    return nodes


def test_redis_cluster_ok_with_replicas_outside_their_masters_site(
        first_deploy: dict[str, Any], lab: Any, spec: ClusterSpec) -> None:
    from freehold.deploy.provision.drill import redis_cli

    assert "cluster_state:ok" in redis_cli(lab, "c2", "CLUSTER INFO").stdout
    nodes = redis_nodes(lab, "c2")
    site = {s.mesh_address: s.site for s in spec.servers}
    assert {n["address"] for n in nodes} == {s.mesh_address
                                            for s in spec.servers_with_role("redis")}
    masters = {n["id"]: n for n in nodes if "master" in n["flags"] and n["slots"]}
    assert len(masters) == 3
    for n in nodes:
        if "slave" in n["flags"]:
            master = masters[n["master"]]
            assert site[n["address"]] != site[master["address"]], (n, master)
    assert {n["master"] for n in nodes if "slave" in n["flags"]} == set(masters)


def test_object_written_in_one_site_is_read_in_another(
        first_deploy: dict[str, Any], lab: Any, spec: ClusterSpec, secrets: Secrets) -> None:
    import boto3
    from botocore.config import Config

    from freehold.deploy.provision.drill import Tunnel

    cfg = Config(request_checksum_calculation="when_required",
                 response_checksum_validation="when_required", s3={"addressing_style": "path"},
                 retries={"max_attempts": 2})
    a1, b1 = spec.server("a1"), spec.server("b1")
    body = os.urandom(200_000)
    with Tunnel(lab, "a1", a1.mesh_address, 8333) as ta, \
            Tunnel(lab, "b1", b1.mesh_address, 8333) as tb:
        def client(port: int) -> Any:
            return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                                aws_access_key_id=secrets["s3_access_key"],
                                aws_secret_access_key=secrets["s3_secret_key"],
                                region_name="us-east-1", config=cfg)

        site_a, site_b = client(ta.local_port), client(tb.local_port)
        assert "media" in [b["Name"] for b in site_a.list_buckets()["Buckets"]]
        site_a.put_object(Bucket="media", Key="drill/one.bin", Body=body)

        def read() -> bytes | None:
            try:
                return site_b.get_object(Bucket="media", Key="drill/one.bin")["Body"].read()
            except Exception:  # noqa: BLE001 - not there yet
                return None

        assert wait_for("the object through site b's gateway", read, 30) == body
    # the volume holding it has a copy in two sites
    vols = json.loads(run(lab, "a1", f"curl -fsS http://{a1.mesh_address}:9333/vol/status"))
    locations: dict[str, set[str]] = {}
    for dc, racks in vols["Volumes"]["DataCenters"].items():
        for nodes in racks.values():
            for volumes in nodes.values():
                for v in volumes or []:
                    locations.setdefault(str(v["Id"]), set()).add(dc)
    assert locations and all(len(dcs) >= 2 for dcs in locations.values()), locations


def test_second_deploy_reports_zero_changes(first_deploy: dict[str, Any], lab: Any,
                                            lab_secrets: LabSecrets) -> None:
    code, doc = deploy_cli(DATA_TIER_ARGS, lab_secrets, timeout=600)
    assert code == 0, doc
    changed = [(r["host"], r["role"], r["changes"]) for r in doc["results"] if r["changed"]]
    assert doc["changed"] == 0 and doc["ok"], changed


# what a server is: each file of /etc and the release tree (its hash), loaded kernel modules,
# unit files' states, packages (things that move on their own are left out: units' run states,
# and transient units such as each SSH login's session scope)
STATE = ("cd / && find /etc /opt/freehold -xdev -type f -print0 2>/dev/null | sort -z "
         "| xargs -0 -r sha256sum 2>/dev/null; echo modules $(cut -d' ' -f1 /proc/modules | sort "
         "| sha256sum); echo units $(systemctl list-unit-files --no-legend --no-pager "
         "| grep -v transient | sha256sum); echo packages $(dpkg-query -W | sha256sum)")


def test_a_dry_run_changes_nothing_on_any_server(first_deploy: dict[str, Any], lab: Any,
                                                 spec: ClusterSpec,
                                                 lab_secrets: LabSecrets) -> None:
    """`freehold deploy --dry-run` (what `freehold plan` runs) reads facts only: no file,
    module, unit or package of any server differs after it (its facts used to load kernel
    modules and wait for services)."""
    before = {s.name: set(run(lab, s.name, STATE).splitlines()) for s in spec.servers}
    code, doc = deploy_cli([*DATA_TIER_ARGS, "--dry-run"], lab_secrets, timeout=600)
    assert code == 0 and doc["dry_run"], doc
    after = {s.name: set(run(lab, s.name, STATE).splitlines()) for s in spec.servers}
    changed = {n: sorted(before[n] ^ after[n]) for n in before}  # "<hash>  <file>" lines
    assert {n: c for n, c in changed.items() if c} == {}


def test_planned_switchover_command(first_deploy: dict[str, Any], lab: Any,
                                   spec: ClusterSpec) -> None:
    proc = subprocess.run([*FREEHOLD, "failover", str(LAB_SPEC), "--json"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["from"] != doc["to"]
    after = {r["Member"]: r for r in doc["after"]}
    assert after[doc["to"]]["Role"] == "Leader"
    assert after[doc["from"]]["State"] in ("running", "streaming")
    # protected again: a synchronous standby streams (the next failure promotes it)
    assert [r for r in doc["after"] if r["Role"] == "Sync Standby"
            and r["State"] in ("running", "streaming")], doc["after"]


def test_failover_when_the_primary_dies(first_deploy: dict[str, Any], lab: Any,
                                        spec: ClusterSpec, secrets: Secrets) -> None:
    from freehold.deploy.provision.drill import postgres_failover

    # the writer goes through pgbouncer/HAProxy on a2 (no database of its own)
    result = postgres_failover(lab, spec, secrets, via="a2")
    assert result["recovery_s"] is not None and result["recovery_s"] <= 45, result
    assert result["acked"] > result["acked_before_kill"], result
    assert result["missing"] == [], result
    assert result["new_leader"] not in (None, result["old_leader"]), result
    assert result["rejoined_s"] is not None, result


def test_redis_serves_after_a_master_dies(first_deploy: dict[str, Any], lab: Any,
                                          spec: ClusterSpec) -> None:
    from freehold.deploy.provision.drill import patroni_cluster, redis_failover

    leader = {m["name"] for m in patroni_cluster(lab, spec) if m.get("role") == "leader"}
    result = redis_failover(lab, spec, avoid=leader)
    assert result["served_s"] is not None and result["served_s"] <= 20, result
    assert result["rejoined_s"] is not None, result


def test_a_host_down_is_reported_and_the_rest_continue(
        first_deploy: dict[str, Any], lab: Any, spec: ClusterSpec, lab_secrets: LabSecrets
        ) -> None:
    lab.stop("c3")
    try:
        code, doc = deploy_cli(["--roles", "base"], lab_secrets, timeout=300)
    finally:
        lab.start("c3")
    assert code == 1
    assert doc["failed_hosts"] == ["c3"] and doc["rerun"] == ["c3"], doc
    assert not doc["ok"] and doc["stopped"] is None
    status = {r["host"]: r["status"] for r in doc["results"]}
    assert status.pop("c3") == "unreachable"
    assert set(status.values()) == {"ok"} and len(status) == len(spec.servers) - 1
