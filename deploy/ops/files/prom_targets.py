#!/usr/bin/python3
"""Prometheus's view of one scrape job's targets, made small, for `freehold status`.

    curl -sS 'http://ADDR:9090/api/v1/targets?state=active&scrapePool=node' \
        | python3 -c "$(cat prom_targets.py)" node

Run on a monitoring server by the status probe (deploy/ops/fleet.py builds that command).
Reads Prometheus's `/api/v1/targets` answer on stdin and prints one JSON line,
`{"job": JOB, "targets": [[instance, health, age_s, interval_s, last_error], ...]}`: health as
Prometheus says it (`up`, `down`, `unknown`), age_s the seconds since the target's last scrape
began (None: never scraped), interval_s its scrape interval (None: not said). Ages are taken
here, on the clock Prometheus stamps with, so the controller's clock does not matter. About 30
bytes per target where the API gives about 1 KB. Standard library only (python3 is on every
server, jq is not). Exit 3, saying why, when stdin is not a target list.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime

# Prometheus durations (`10s`, `1m30s`, `500ms`): ms before m
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# RFC 3339 with up to nanoseconds, as Go writes it
STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
ERROR_CHARS = 200


def seconds(duration: str | None) -> float | None:
    """`1m30s` -> 90.0; None for anything else."""
    parts = DURATION.findall(duration or "")
    if not parts or "".join(n + u for n, u in parts) != duration:
        return None
    return float(sum(int(n) * UNIT_S[u] for n, u in parts))


def age(stamp: str | None, now: float) -> float | None:
    """Seconds from `stamp` (RFC 3339) to `now`; None when never scraped (Go's zero time)."""
    m = STAMP.match(stamp or "")
    if not m or m.group(1).startswith("0001-"):
        return None
    fraction = (m.group(2) or "").ljust(6, "0")[:6]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    when = datetime.fromisoformat(f"{m.group(1)}.{fraction}{zone}")
    return round(now - when.timestamp(), 1)


def compact(doc: object, job: str, now: float) -> list[list[object]]:
    """The job's active targets as short rows. Raises ValueError for another document."""
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise ValueError(f"not a successful API answer: {json.dumps(doc)[:200]}")
    data = doc.get("data")
    targets = data.get("activeTargets") if isinstance(data, dict) else None
    if not isinstance(targets, list):
        raise ValueError("the answer has no data.activeTargets list")
    rows: list[list[object]] = []
    for t in targets:
        labels = t.get("labels") if isinstance(t, dict) else None
        if not isinstance(labels, dict) or labels.get("job") != job \
                or "instance" not in labels:
            continue
        rows.append([labels["instance"], t.get("health", "unknown"),
                     age(t.get("lastScrape"), now), seconds(t.get("scrapeInterval")),
                     " ".join(str(t.get("lastError") or "").split())[:ERROR_CHARS]])
    return rows


def main(argv: list[str]) -> int:
    job = argv[1] if len(argv) > 1 else "node"
    text = sys.stdin.read()
    try:
        rows = compact(json.loads(text), job, time.time())
    except ValueError as exc:  # JSONDecodeError is one
        print(f"prometheus gave no target list ({exc}): {text[:200]!r}")
        return 3
    print(json.dumps({"job": job, "targets": rows}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
