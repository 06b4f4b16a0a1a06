"""Deploy and failover figures on a lab of its own (a copy of inventories/lab.yaml).

    .venv/bin/python benchmarks/deploy_bench.py [--runs 3] [--keep]

Brings up a separate lab (spec name `deploybench`, lab network 198.18.40.0/22, sites
198.18.41-43.0/24, so it never touches the `lab` lab), then measures:
  - the first deploy from bare servers and the no-op second deploy (seconds, operations);
  - Patroni failover under a writer (`--runs` times): seconds until writes through pgbouncer
    succeed again after the primary's server is killed, acknowledged rows lost (must be 0),
    and seconds until the old primary, started again, replicates (pg_rewind);
  - one Redis master kill: seconds until every slot is served again.
Prints the figures and writes benchmarks/results/deploy_bench.json. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]

from resultsfile import write_results  # noqa: E402

from freehold.deploy.provenance import DEPLOYED_DURABILITY  # noqa: E402
from freehold.deploy.provision.drill import (  # noqa: E402
    deploy_subprocess,
    patroni_cluster,
    postgres_failover,
    redis_failover,
)
from freehold.deploy.secrets import SecretStore  # noqa: E402
from freehold.deploy.spec import load_spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "deploy_bench.json"
DATA_TIER = ("base", "mesh", "etcd", "postgres", "pgbouncer", "redis", "media")


def bench_spec(folder: Path) -> Path:
    """inventories/lab.yaml renamed `deploybench`, site N moved to 198.18.(40+N).0/24."""
    doc = yaml.safe_load((ROOT / "inventories" / "lab.yaml").read_text())
    doc["name"] = "deploybench"
    doc["lab"] = {"network": "198.18.40.0/22"}  # its own range: runs beside the main lab

    def move(text: str) -> str:
        return re.sub(r"^198\.18\.(\d+)\.", lambda m: f"198.18.{40 + int(m.group(1))}.", text)

    for site in doc["sites"]:
        if site.get("network"):
            site["network"] = move(site["network"])
    for server in doc["servers"]:
        for key in ("address", "address_start", "public_address", "private_address"):
            if server.get(key):
                server[key] = move(server[key])
    path = folder / "deploybench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_healthy(lab, spec, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = patroni_cluster(lab, spec)
        roles = [m.get("role") for m in members]
        if (len(members) == len(spec.servers_with_role("postgres"))
                and roles.count("leader") == 1 and "sync_standby" in roles
                and all(m.get("state") in ("running", "streaming") for m in members)):
            return
        time.sleep(2)
    raise SystemExit(f"Patroni not healthy after {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="failover runs (default 3)")
    ap.add_argument("--keep", action="store_true", help="leave the bench lab up")
    ap.add_argument("--roles", default=",".join(DATA_TIER),
                    help="roles to deploy (default: the data tier of issue 5; 'all' = ROLE_ORDER)")
    args = ap.parse_args()

    from freehold.deploy.lab import Lab

    tmp = Path(tempfile.mkdtemp(prefix="deploybench-"))
    spec_path = bench_spec(tmp)
    spec = load_spec(spec_path)
    lab = Lab.from_spec(spec_path)
    key = Fernet.generate_key()
    secrets_path = tmp / "deploybench.secrets"
    role_args = [] if args.roles == "all" else ["--roles", args.roles]
    figures: dict = {"spec": "inventories/lab.yaml (as deploybench)",
                     "servers": len(spec.servers), "roles": args.roles,
                     "load_average_at_start": [round(x, 1) for x in os.getloadavg()]}
    try:
        if lab.is_up():
            lab.down()
        t = time.monotonic()
        lab.up()
        figures["lab_up_s"] = round(time.monotonic() - t, 1)

        for label in ("first", "second"):
            t = time.monotonic()
            code, doc = deploy_subprocess(spec_path, secrets_path, key, role_args,
                                          timeout=1500)
            wall = time.monotonic() - t
            figures[f"{label}_deploy_s"] = round(wall, 1)
            figures[f"{label}_deploy_changed_ops"] = doc["changed"]
            figures[f"{label}_deploy_ok"] = doc["ok"]
            print(f"{label} deploy: {wall:.1f} s, {doc['changed']} operations changed, "
                  f"ok={doc['ok']}", flush=True)
            if code != 0:
                raise SystemExit(f"{label} deploy failed: {doc.get('stopped')} "
                                 f"{doc.get('failed_hosts')}")

        secrets = SecretStore(secrets_path, spec.name, key=key).load()
        runs = []
        for i in range(args.runs):
            wait_healthy(lab, spec)
            r = postgres_failover(lab, spec, secrets, via="a2")
            runs.append(r)
            print(f"failover {i + 1}: {r['old_leader']} → {r['new_leader']}, writes back "
                  f"after {r['recovery_s']:.1f} s, {r['acked']} acknowledged, "
                  f"{len(r['missing'])} lost, old primary replicating after "
                  f"{r['rejoined_s']} s", flush=True)
        recov = [r["recovery_s"] for r in runs if r["recovery_s"] is not None]
        figures["failover_runs"] = [{k: v for k, v in r.items() if k != "old_leader_state"}
                                    for r in runs]
        figures["failover_mean_s"] = round(statistics.mean(recov), 1) if recov else None
        figures["failover_worst_s"] = round(max(recov), 1) if recov else None
        figures["acknowledged_rows_lost"] = sum(len(r["missing"]) for r in runs)
        wait_healthy(lab, spec)
        leader = {m["name"] for m in patroni_cluster(lab, spec) if m.get("role") == "leader"}
        redis = redis_failover(lab, spec, avoid=leader)
        figures["redis_master_kill_served_s"] = (round(redis["served_s"], 1)
                                                 if redis["served_s"] is not None else None)
        print(f"redis master {redis['killed']} killed: serving again after "
              f"{redis['served_s']} s", flush=True)
    finally:
        if not args.keep:
            lab.down()
    write_results(RESULTS, figures, script=__file__, settings=vars(args),
                  durability=DEPLOYED_DURABILITY)
    print(json.dumps({k: v for k, v in figures.items() if k != "failover_runs"}, indent=2))
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
