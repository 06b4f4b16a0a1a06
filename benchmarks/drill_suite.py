"""Every failover drill on the lab, in one run, into a results file (issue 21's "done when").

    .venv/bin/python benchmarks/drill_suite.py [--spec inventories/lab.yaml] [--out DIR]
                                               [--only leader-kill,site-kill]

Runs `freehold drill SPEC --all` (or the scenarios of --only) on a lab that is up and deployed
(`freehold up` first), prints its summary table and writes benchmarks/results/drill_suite.json:
the run header (commit, the settings the drills ran with: Patroni's failure detection and
failsafe mode, the backup role's archive and restore commands, PostgreSQL and Redis durability
as deployed), then each drill's measures (write and read outage per site, acknowledged writes
lost, errors by status, two primaries, time until protected again) without the per-request
events, which stay in the report folder beside the PNG timelines and the HTML page. Takes
about 30 minutes for the 19 scenarios on the 9-server lab.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from resultsfile import write_results  # noqa: E402

from freehold.deploy.drills.scenarios import SCENARIOS  # noqa: E402
from freehold.deploy.provenance import DEPLOYED_DURABILITY  # noqa: E402
from freehold.roles.backup.config import dynamic_archiving  # noqa: E402
from freehold.roles.postgres.config import dynamic_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "drill_suite.json"


def summary(doc: dict[str, Any]) -> list[str]:
    rows = [f"{'scenario':18} {'target':>6} {'worst write':>11} {'lost':>4} {'500':>4} "
            f"{'2xP':>4} {'prot s':>6}  ok"]
    for d in doc["drills"]:
        prot = (d.get("protection") or {}).get("members_s")
        worst = d.get("worst_write_outage_s")
        rows.append(f"{d['scenario']:18} {d['target_write_s']:>6.0f} "
                    f"{'-' if worst is None else f'{worst:.1f}':>11} "
                    f"{len(d.get('lost_writes') or []):>4} "
                    f"{sum((d.get('server_errors') or {}).values()):>4} "
                    f"{'yes' if d.get('two_primaries') else 'no':>4} "
                    f"{'-' if prot is None else f'{prot:.1f}':>6}  "
                    f"{'yes' if d['ok'] else 'NO'}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="inventories/lab.yaml")
    ap.add_argument("--out", default=None, help="report folder (default: a new one under "
                    "drill-reports/)")
    ap.add_argument("--only", default="", help="comma-separated scenarios instead of --all")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    out = Path(args.out or ROOT / "drill-reports" / f"suite-{time.strftime('%Y%m%d-%H%M%S')}")
    only = [s for s in args.only.split(",") if s]
    cmd = [str(ROOT / ".venv" / "bin" / "freehold"), "drill", args.spec, "--out", str(out)]
    started = time.monotonic()
    docs: list[dict[str, Any]] = []
    errors: list[str] = []  # a drill run that stopped early says why in its last error line
    for what in (only or [None]):
        folder = out / what if what else out
        r = subprocess.run([*cmd[:-1], str(folder), *([what] if what else ["--all"])],
                           cwd=ROOT, stderr=subprocess.PIPE, text=True, timeout=3 * 3600)
        sys.stderr.write(r.stderr[-2000:])
        report = folder / "drills.json"
        if not report.exists():
            print(f"error: {' '.join(cmd)} wrote no report (exit {r.returncode})",
                  file=sys.stderr)
            return 2
        docs.append(json.loads(report.read_text()))
        errors += [line for line in r.stderr.splitlines() if line.startswith("error:")][-1:]
    drills = [{k: v for k, v in d.items() if k != "events"} for doc in docs
              for d in doc["drills"]]
    ran = {d["scenario"] for d in drills}
    # scenarios asked for that have no measures: the run stopped before them (errors says why)
    not_run = [name for name in (only or list(SCENARIOS)) if name not in ran]
    doc = {"spec": args.spec, "report": str(out), "elapsed_s": round(
        time.monotonic() - started, 1), "ok": all(d["ok"] for d in drills) and not not_run,
        "failed": [d["scenario"] for d in drills if not d["ok"]], "not_run": not_run,
        "errors": errors, "drills": drills}
    settings = {"spec": args.spec, "scenarios": only or "all",
                "patroni_dynamic": dynamic_settings(), "backup": dynamic_archiving()}
    write_results(args.results, doc, script=__file__, settings=settings,
                  durability=DEPLOYED_DURABILITY, indent=1)
    print("\n".join(summary(doc)))
    for line in errors:
        print(line)
    print(f"wrote {args.results} ({len(drills)} drills, {len(doc['failed'])} failed, "
          f"{len(not_run)} not run); report: {out / 'index.html'}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
