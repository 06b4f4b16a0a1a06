"""The PNG chart of a run, beside Locust's HTML report (matplotlib, Agg backend; no Locust).

Three panels over time from Locust's stats history (`locust_stats_history.csv`, Aggregated rows):
requests/s (with each step's target), p99 (with the SLO's tightest endpoint limit for scale) and
failures/s; the steps are shaded, and the 4 M and 10 M marks are drawn as vertical lines.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_history(csv_path: Path) -> list[dict[str, float]]:
    """Aggregated rows of Locust's stats history: t (epoch s), users, rps, fps, p50, p99."""
    rows: list[dict[str, float]] = []
    if not csv_path.exists():
        return rows
    with csv_path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r.get("Name") != "Aggregated":
                continue

            def num(key: str, r: dict[str, str] = r) -> float:
                v = (r.get(key) or "").strip()
                try:
                    return float(v)
                except ValueError:
                    return float("nan")

            rows.append({"t": num("Timestamp"), "users": num("User Count"),
                         "rps": num("Requests/s"), "fps": num("Failures/s"),
                         "p50": num("50%"), "p99": num("99%")})
    return rows


def chart(run: dict[str, Any], history: list[dict[str, float]], png: Path,
          title: str = "") -> Path:
    """Write the run's chart; `run` is RunResult.to_json()."""
    steps = run.get("steps", [])
    t0 = min([h["t"] for h in history] + [s["t_start"] for s in steps if s.get("t_start")]
             or [0.0])
    fig, (ax_rps, ax_p99, ax_err) = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    xs = [h["t"] - t0 for h in history]
    ax_rps.plot(xs, [h["rps"] for h in history], color="tab:blue", label="requests/s")
    ax_p99.plot(xs, [h["p99"] for h in history], color="tab:purple", label="p99 (ms, ~10 s)")
    ax_err.plot(xs, [h["fps"] for h in history], color="tab:red", label="failures/s")
    for i, s in enumerate(steps):
        a, b = s["t_start"] - t0, s["t_end"] - t0
        colour = "#e8f5e9" if s["passed"] else "#ffebee"
        for ax in (ax_rps, ax_p99, ax_err):
            ax.axvspan(a, b, color=colour, alpha=0.6, lw=0)
        ax_rps.hlines(s["target_rps"], a, b, colors="tab:gray", linestyles="dashed",
                      label="target req/s" if i == 0 else None)
        ax_rps.hlines(s["rps"], a, b, colors="tab:green", lw=2,
                      label="measured req/s (step)" if i == 0 else None)
        ax_p99.hlines(s["p99_ms"], a, b, colors="black", lw=2,
                      label="p99 (step)" if i == 0 else None)
        ax_rps.annotate(s["name"], ((a + b) / 2, 0.98), xycoords=("data", "axes fraction"),
                        ha="center", va="top", fontsize=7)
        if s.get("mark"):
            for ax in (ax_rps, ax_p99, ax_err):
                ax.axvline(a, color="tab:orange", lw=1.5)
            ax_rps.annotate(f" {s['mark']} accounts", (a, 0.7), xycoords=("data", "axes fraction"),
                            color="tab:orange", fontsize=9, fontweight="bold", ha="left")
    p99s = [v for v in (run.get("slo") or {}).get("p99_ms", {}).values()
            if isinstance(v, int | float)]
    if p99s:
        ax_p99.axhline(min(p99s), color="tab:red", ls=":", lw=1,
                       label=f"tightest p99 SLO ({min(p99s):.0f} ms)")
    ax_rps.set_ylabel("requests/s")
    ax_p99.set_ylabel("p99 ms")
    ax_err.set_ylabel("failures/s")
    ax_err.set_xlabel("seconds since start")
    for ax in (ax_rps, ax_p99, ax_err):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7, framealpha=0.8)
    verdict = "PASS" if run.get("passed") else f"FAIL at {run.get('first_failed_step')}"
    scale = run.get("scale") or {}
    sub = f"scale {scale['factor']:.4g}" if scale else ""
    fig.suptitle(f"{title or run.get('shape', '')} — {verdict}  {sub}", fontsize=11)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def chart_run_dir(out_dir: Path, title: str = "") -> Path:
    run = json.loads((out_dir / "summary.json").read_text())
    return chart(run, read_history(out_dir / "locust_stats_history.csv"),
                 out_dir / "chart.png", title)
