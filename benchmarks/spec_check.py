"""Benchmark: expand and check a 300-server cluster spec.

Times, per run: reading the YAML file (ruamel round-trip, keeping line numbers), validating and
expanding ranges (`load_spec`), the placement rules (`check_placement`), the site/provider
survival analysis (`survival`) and building the pyinfra Inventory. Uses
inventories/production-example.yaml when it exists, else a generated 303-server spec (4 sites,
3 providers, ranges). Prints the figures and writes benchmarks/results/spec_check.json.

    .venv/bin/python benchmarks/spec_check.py [--runs 15] [--spec FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

from resultsfile import write_results  # noqa: E402

from freehold.deploy.inventory import build_inventory  # noqa: E402
from freehold.deploy.spec import load_spec  # noqa: E402
from freehold.deploy.spec.placement import check_placement, survival  # noqa: E402
from freehold.deploy.spec.synthetic import large_doc  # noqa: E402


def explicit_doc() -> dict:
    """The generated spec with one entry per server (no ranges): the YAML a tool might emit."""
    from freehold.deploy.spec import parse_spec
    doc = large_doc()
    spec = parse_spec(doc)
    doc["servers"] = [{"name": s.name, "site": s.site, "address": s.public_address,
                       "roles": [r for r in s.roles if r not in ("base", "mesh")]}
                      for s in spec.servers]
    return doc


def measure(path: Path, runs: int) -> tuple[dict, dict[str, list[float]]]:
    """Wall-clock and CPU (process_time: this process only, so the figure holds on a machine
    shared with other work) milliseconds per phase."""
    keys = ("load_and_expand", "placement", "survival", "inventory", "total")
    phases: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(max(1, runs)):
        t0, c0 = time.perf_counter(), time.process_time()
        spec = load_spec(path)
        t1, c1 = time.perf_counter(), time.process_time()
        errors, warnings = check_placement(spec)
        t2, c2 = time.perf_counter(), time.process_time()
        surv = survival(spec)
        t3, c3 = time.perf_counter(), time.process_time()
        inventory = build_inventory(spec)
        t4, c4 = time.perf_counter(), time.process_time()
        for key, sec, csec in (("load_and_expand", t1 - t0, c1 - c0),
                               ("placement", t2 - t1, c2 - c1), ("survival", t3 - t2, c3 - c2),
                               ("inventory", t4 - t3, c4 - c3), ("total", t3 - t0, c3 - c0)):
            phases[key].append(sec * 1000)
            cpu[key].append(csec * 1000)
    return {
        "servers": len(spec.servers), "sites": len(spec.sites),
        "providers": len(spec.providers), "server_entries": len(yaml.safe_load(
            path.read_text())["servers"]),
        "errors": len(errors), "warnings": len(warnings),
        "survives_any_site": surv["any_site"], "survives_any_provider": surv["any_provider"],
        "inventory_hosts": len(inventory), "runs": len(phases["total"]),
        "ms_median": {k: round(statistics.median(v), 2) for k, v in phases.items()},
        "ms_min": {k: round(min(v), 2) for k, v in phases.items()},
        "cpu_ms_median": {k: round(statistics.median(v), 2) for k, v in cpu.items()},
    }, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--spec", type=Path, default=ROOT / "inventories" /
                        "production-example.yaml")
    args = parser.parse_args()
    cases: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        specs: list[tuple[str, Path]] = []
        if args.spec.exists():
            specs.append((os.path.relpath(args.spec.resolve(), ROOT), args.spec))
        ranged, explicit = Path(tmp) / "ranges.yaml", Path(tmp) / "explicit.yaml"
        ranged.write_text(yaml.safe_dump(large_doc(), sort_keys=False))
        explicit.write_text(yaml.safe_dump(explicit_doc(), sort_keys=False))
        specs += [("generated, with ranges", ranged), ("generated, one entry per server",
                                                       explicit)]
        for label, path in specs:
            case, _ = measure(path, args.runs)
            cases[label] = case
            print(f"{label}: {case['servers']} servers from {case['server_entries']} entries, "
                  f"{case['sites']} sites, {case['providers']} providers; errors "
                  f"{case['errors']}, survives any site {case['survives_any_site']}, "
                  f"any provider {case['survives_any_provider']}")
            for key in case["ms_median"]:
                print(f"  {key:16s} median {case['ms_median'][key]:8.2f} ms   "
                      f"min {case['ms_min'][key]:8.2f} ms   "
                      f"cpu median {case['cpu_ms_median'][key]:8.2f} ms   ({case['runs']} runs)")
    result = {
        "benchmark": "spec_check",
        "note": "total = load_and_expand + placement + survival (what `inventory check` does); "
                "inventory = building the pyinfra Inventory; cpu = this process's CPU time "
                "(unaffected by other work on a shared machine)",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cases": cases,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = write_results(ROOT / "benchmarks" / "results" / "spec_check.json", result,
                        script=__file__, settings=vars(args),
                        durability="not applicable (no database)")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
