"""`freehold up` figures on a lab of its own (a copy of inventories/lab.yaml).

    nice .venv/bin/python benchmarks/up_bench.py [--keep] [--spec PATH] [--net 198.19.48]

Default spec: inventories/lab.yaml renamed `upbench`, lab network 198.19.48.0/20 (`--net`), sites
198.19.49-51.0/24 (it never touches the `lab` lab). Measures, image build apart (the image is
built first when missing, and not timed):
  - `freehold up` from nothing (no lab servers, no secrets): wall seconds;
  - a second `freehold up` (no-op): wall seconds and operations changed (must be 0);
  - a rolling deploy of a new release (`freehold deploy --roles app`, FREEHOLD_RELEASE_LABEL
    set) under light steady load through both virtual IPs: wall seconds and failed requests
    (must be 0).
Prints the figures and writes benchmarks/results/up_bench.json. Needs root. The lab is taken
down at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]

from resultsfile import write_results  # noqa: E402

from freehold.deploy.lab import Lab  # noqa: E402
from freehold.deploy.provenance import DEPLOYED_DURABILITY  # noqa: E402
from freehold.deploy.provision.probe import SteadyLoad  # noqa: E402
from freehold.deploy.spec import load_spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "up_bench.json"


def bench_spec(folder: Path, net: str = "198.19.48") -> Path:
    """inventories/lab.yaml renamed `upbench`, site N moved to A.B.(C+N).0/24 (net A.B.C)."""
    doc = yaml.safe_load((ROOT / "inventories" / "lab.yaml").read_text())
    doc["name"] = "upbench"
    a, b, c = (int(x) for x in net.split("."))
    doc["lab"] = {"network": f"{a}.{b}.{c}.0/20"}

    def move(text: str) -> str:
        return re.sub(r"^198\.18\.(\d+)\.", lambda m: f"{a}.{b}.{c + int(m.group(1))}.", text)

    for site in doc["sites"]:
        if site.get("network"):
            site["network"] = move(str(site["network"]))
    for server in doc["servers"]:
        for key in ("address", "address_start", "public_address", "private_address"):
            if server.get(key):
                server[key] = move(str(server[key]))
    path = folder / "upbench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def freehold(args: list[str], env: dict[str, str], timeout: float = 3600
             ) -> tuple[int, dict[str, Any], float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "freehold.deploy", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout)
    took = time.monotonic() - t0
    try:
        return proc.returncode, json.loads(proc.stdout), took
    except json.JSONDecodeError:
        raise SystemExit(f"freehold {' '.join(args)} exited {proc.returncode}: "
                         f"{proc.stderr.strip()[-2000:]}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, help="a lab spec (default: a copy of the lab's)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    ap.add_argument("--net", default="198.19.48",
                    help="first /24 of the /20 the lab uses (A.B.C, C a multiple of 16)")
    args = ap.parse_args()
    parts = args.net.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts) \
            or int(parts[2]) % 16:
        sys.exit(f"--net: {args.net!r} — give A.B.C with C a multiple of 16, e.g. 198.19.48")
    with tempfile.TemporaryDirectory(prefix="up-bench-") as tmp:
        spec_path = args.spec or bench_spec(Path(tmp), args.net)
        spec = load_spec(spec_path)
        lab = Lab.from_spec(spec_path)
        lab.down()
        from freehold.deploy.lab.image import build_image

        build_image()                      # cached: not part of the measured time
        secrets = Path(tmp) / "upbench.secrets"
        env = {**os.environ, "FREEHOLD_SECRETS_KEY": Fernet.generate_key().decode()}
        env.pop("FREEHOLD_RELEASE_LABEL", None)
        up_args = ["up", "--spec", str(spec_path), "--secrets", str(secrets), "--json"]
        try:
            code, first, first_s = freehold(up_args, env)
            if code != 0:
                raise SystemExit(f"first up failed: {first}")
            print(f"freehold up from nothing: {first_s:.1f} s ({first['steps']})", flush=True)
            code, second, second_s = freehold(up_args, env)
            print(f"second freehold up: {second_s:.1f} s, {second['changed']} changes",
                  flush=True)
            ca = first["ca_file"] or None
            from freehold.roles.lb.config import vips

            loads = [SteadyLoad(f"https://{v}", ca, threads=2) for v in vips(spec).values()]
            for load in loads:
                load.__enter__()
            time.sleep(2)
            code, rolled, roll_s = freehold(
                ["deploy", str(spec_path), "--roles", "app", "--yes", "--json",
                 "--secrets", str(secrets)],
                {**env, "FREEHOLD_RELEASE_LABEL": f"bench-{int(time.time())}"})
            time.sleep(2)
            stats = [load.stop().to_doc() for load in loads]
            requests = sum(s["requests"] for s in stats)
            failed = sum(s["failures"] for s in stats)
            print(f"rolling deploy of the app: {roll_s:.1f} s (exit {code}), {requests} "
                  f"requests, {failed} failed", flush=True)
        finally:
            if not args.keep:
                lab.down()
    doc = {
        "spec": spec.name, "servers": len(spec.servers), "cores": os.cpu_count(),
        "up_from_nothing_s": round(first_s, 1), "up_steps_s": first["steps"],
        "up_noop_s": round(second_s, 1), "up_noop_changes": second["changed"],
        "rolling_deploy_s": round(roll_s, 1), "rolling_deploy_ok": code == 0 and rolled["ok"],
        "rolling_requests": requests, "rolling_failed_requests": failed,
        "load_during_roll": stats,
        "load_average": os.getloadavg()[0],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_results(RESULTS, doc, script=__file__, settings=vars(args),
                  durability=DEPLOYED_DURABILITY)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
