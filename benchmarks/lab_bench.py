"""Benchmark: the lab — image build, boot of 12 servers, idle memory, servers held idle.

Figures: the time to build the Debian 12 image (debootstrap; `--rebuild`, else the cached
image's recorded build time); the time from `up` to sshd answering on 12 servers (the image
exists); idle memory per server after they settle (PSS and RSS of its processes, and the drop in
the machine's MemAvailable divided by the servers); then the same for `--max` servers (default
100) to show how many idle servers the machine holds, with the capacity the memory left
implies. Every lab is taken down afterwards. Needs root. Prints the figures and writes
benchmarks/results/lab_bench.json.

    .venv/bin/python benchmarks/lab_bench.py [--rebuild] [--small 12] [--max 100] [--settle 20]
        [--name bench] [--net 198.19.128]

`--name` and `--net` give the labs their own names (NAMEsmall, NAMEmax) and addresses (sites
NET+0, NET+1, ... in the /20 from NET), apart from the main lab and from other people's labs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]

from resultsfile import write_results  # noqa: E402

from freehold.deploy.lab import Lab  # noqa: E402
from freehold.deploy.lab.image import build_image, image_info  # noqa: E402

MIB = 1024 * 1024
PER_SITE = 60          # servers per /24 site


def bench_spec(path: Path, name: str, servers: int, net: str = "198.19.128") -> Path:
    """`servers` servers over ceil(servers/60) sites of NET.0/20 (20 ms between)."""
    sites = max(2, -(-servers // PER_SITE))
    a, b, c = (int(x) for x in net.split("."))
    doc = {
        "name": name,
        "providers": [{"name": "bench", "kind": "owned"}],
        "sites": [{"name": f"s{i}", "provider": "bench", "network": f"{a}.{b}.{c + i}.0/24",
                   "latency_ms": {f"s{j}": 20 for j in range(i + 1, sites)}}
                  for i in range(sites)],
        "lab": {"network": f"{a}.{b}.{c}.0/20"},
        "defaults": {"cores": 1, "ram_gib": 1, "disk_gib": 10},
        "servers": [{"name": f"n{k:03d}", "site": f"s{k % sites}",
                     "address": f"{a}.{b}.{c + k % sites}.{10 + k // sites}"}
                    for k in range(servers)],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def mem_available() -> int:
    return psutil.virtual_memory().available


def run_lab(spec: Path, settle: float) -> dict:
    lab = Lab.from_spec(spec)
    lab.down()
    n = len(lab.plan.servers)
    avail_before = mem_available()
    start = time.monotonic()
    try:
        lab.up(timeout=max(180.0, 3.0 * n))
        boot_s = time.monotonic() - start
        checks = [lab.run(s.name, "hostname", timeout=60).stdout.strip() == s.name
                  for s in lab.plan.servers[:: max(1, n // 12)]]
        time.sleep(settle)
        mem = [lab.memory(s.name) for s in lab.plan.servers]
        avail_after = mem_available()
        load = os.getloadavg()
        states = [r["state"] for r in lab.status()]
    finally:
        t = time.monotonic()
        lab.down()
        down_s = time.monotonic() - t
    pss = [m["pss"] / MIB for m in mem]
    rss = [m["rss"] / MIB for m in mem]
    drop = (avail_before - avail_after) / MIB / n
    return {
        "servers": n,
        "boot_seconds": round(boot_s, 1),
        "ssh_checked": sum(checks), "ssh_ok": all(checks),
        "running": states.count("running"),
        "idle_pss_mib_per_server": {"mean": round(statistics.mean(pss), 1),
                                    "max": round(max(pss), 1)},
        "idle_rss_mib_per_server": {"mean": round(statistics.mean(rss), 1),
                                    "max": round(max(rss), 1)},
        "mem_available_drop_mib_per_server": round(drop, 1),
        "mem_available_after_gib": round(avail_after / 1024 / MIB, 2),
        # the machine's other tenants move MemAvailable too: take the larger of the two
        "servers_memory_allows": int(avail_before / MIB / max(drop, statistics.mean(pss))),
        "servers_memory_allows_by_rss": int(avail_before / MIB / statistics.mean(rss)),
        "loadavg_1m_settled": round(load[0], 2),
        "down_seconds": round(down_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rebuild", action="store_true", help="time a fresh image build")
    ap.add_argument("--small", type=int, default=12)
    ap.add_argument("--max", type=int, default=100)
    ap.add_argument("--settle", type=float, default=20.0, help="idle seconds before measuring")
    ap.add_argument("--name", default="bench", help="lab name prefix (NAMEsmall, NAMEmax)")
    ap.add_argument("--net", default="198.19.128",
                    help="first /24 of the /20 the labs use (A.B.C with C a multiple of 16)")
    args = ap.parse_args()
    parts = args.net.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts) \
            or int(parts[2]) % 16:
        sys.exit(f"--net: {args.net!r} — give A.B.C with C a multiple of 16, e.g. 198.19.128")
    if os.geteuid() != 0:
        sys.exit("lab_bench needs root")
    t = time.monotonic()
    build_image(rebuild=args.rebuild)
    info = image_info()
    image = {"rebuilt": args.rebuild,
             "build_seconds": round(time.monotonic() - t, 1) if args.rebuild
             else info.get("build_seconds"), "mirror": info.get("mirror")}
    print(f"image: built in {image['build_seconds']} s "
          f"({'now' if args.rebuild else 'recorded at its build'})", flush=True)
    results: dict = {"image": image, "machine": {
        "cores": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release()}}
    with tempfile.TemporaryDirectory() as tmp:
        for key, n in (("small", args.small), ("max", args.max)):
            if n <= 0:
                continue
            r = run_lab(bench_spec(Path(tmp) / f"{key}.yaml", f"{args.name}{key}", n,
                                   args.net), args.settle)
            results[key] = r
            print(f"{n} servers: sshd on all after {r['boot_seconds']} s; idle PSS "
                  f"{r['idle_pss_mib_per_server']['mean']} MiB/server (RSS "
                  f"{r['idle_rss_mib_per_server']['mean']}), MemAvailable drop "
                  f"{r['mem_available_drop_mib_per_server']} MiB/server -> memory allows "
                  f"~{r['servers_memory_allows']} servers (by RSS, double-counting shared "
                  f"pages: ~{r['servers_memory_allows_by_rss']}); load {r['loadavg_1m_settled']}; "
                  f"down in {r['down_seconds']} s", flush=True)
    out = write_results(ROOT / "benchmarks" / "results" / "lab_bench.json", results,
                        script=__file__, settings=vars(args),
                        durability="not applicable (idle servers, no database)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
