"""A drill's results: a rich table, the PNG timeline (requests per second by status, the fault's
start and end marked) and one HTML page for a suite."""

from __future__ import annotations

import html
from pathlib import Path

from rich.table import Table

from freehold.deploy.drills import events as ev
from freehold.deploy.drills.runner import DrillResult

COLOURS = {"2xx": "#2e7d32", "503": "#f9a825", "5xx": "#c62828", "4xx": "#6a1b9a",
           "no answer": "#455a64"}


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}"


def summary_table(results: list[DrillResult]) -> Table:
    sites = sorted({s.site for r in results for s in r.sites})
    t = Table(title="failover drills (on: what the fault acted on; wX/rX: write/read outage "
              "through site X's VIP, *: down by design; 500: 5xx other than 503; 2×P: two "
              "writable primaries; prot: protected again after the restore)",
              title_justify="left")
    t.add_column("scenario", no_wrap=True)
    t.add_column("on")
    for s in sites:
        t.add_column(f"w{s}", justify="right")
        t.add_column(f"r{s}", justify="right")
    for col in ("≤", "acked", "lost", "500", "2×P", "leader", "prot s", "ok"):
        t.add_column(col, justify="right")
    for r in results:
        by = {s.site: s for s in r.sites}
        cells = [r.scenario, victims(r)]
        for s in sites:
            row = by.get(s)
            mark = "*" if row and row.down_by_design else ""
            cells += [(_s(row.write.seconds) + mark) if row else "",
                      (_s(row.read.seconds) + mark) if row else ""]
        p = r.protection
        prot = None if not p.ok else max(v or 0.0 for v in p.seconds)
        cells += [f"{r.target_write_s:.0f}", str(r.acked), str(len(r.lost)),
                  str(sum(r.server_errors.values())), "yes" if r.two_primaries else "no",
                  f"{r.leader_before}→{r.leader_after or '?'}", _s(prot),
                  "[green]yes[/green]" if r.ok else "[red]NO[/red]"]
        t.add_row(*cells)
    return t


def latency_table(results: list[DrillResult]) -> Table | None:
    """p50/p99 of what users waited for writes and reads per site while the fault was held,
    and the requests that failed then: for the drills that report latency (slow-link)."""
    rows = [r for r in results if r.report_latency]
    if not rows:
        return None
    t = Table(title="latency while the fault was held (ms; failed and timed-out requests "
              "included)", title_justify="left")
    for col in ("scenario", "site", "writes", "w p50", "w p99", "w errors", "reads", "r p50",
                "r p99", "r errors"):
        t.add_column(col, justify="left" if col in ("scenario", "site") else "right")
    for r in rows:
        for s in r.sites:
            cells = [r.scenario, s.site + ("*" if s.down_by_design else "")]
            for lat in (s.write_latency, s.read_latency):
                cells += ["", "", "", ""] if lat is None else [
                    str(lat.requests), _ms(lat.p50_ms), _ms(lat.p99_ms), str(lat.errors)]
            t.add_row(*cells)
    return t


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def victims(r: DrillResult) -> str:
    """`a1, b1` (what the fault acted on), `—` when nothing is recorded."""
    return ", ".join(r.victims) or "—"


def failed_checks(r: DrillResult) -> list[str]:
    """The checks that failed, each with its note when it has one."""
    return [f"{k} ({r.check_notes[k]})" if k in r.check_notes else k
            for k, ok in r.checks().items() if not ok]


def timeline_png(r: DrillResult, path: Path) -> Path:
    """Requests answered per second by status class, one panel per site, the fault shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = min((e.t0 for e in r.events), default=r.fault_start)
    end = max((e.t1 for e in r.events), default=r.fault_end)
    sites = [s.site for s in r.sites]
    fig, axes = plt.subplots(len(sites), 1, figsize=(10, 2.6 * len(sites)), sharex=True,
                             squeeze=False)
    for ax, site in zip(axes[:, 0], sites, strict=True):
        buckets = ev.per_second([e for e in r.events if e.site == site], start, end)
        xs = list(range(max((len(v) for v in buckets.values()), default=1)))
        for cls in COLOURS:
            if cls in buckets:
                ax.plot(xs, buckets[cls], label=cls, color=COLOURS[cls], drawstyle="steps-post")
        ax.axvspan(r.fault_start - start, r.fault_end - start, color="#ef9a9a", alpha=0.25)
        ax.axvline(r.fault_start - start, color="#c62828", linestyle="--", linewidth=1)
        ax.axvline(r.fault_end - start, color="#1565c0", linestyle="--", linewidth=1)
        row = next(s for s in r.sites if s.site == site)
        ax.set_title(f"site {site}: write outage {_s(row.write.seconds)} s, read outage "
                     f"{_s(row.read.seconds)} s" + (" (down by design)"
                                                     if row.down_by_design else ""),
                     fontsize=9, loc="left")
        ax.set_ylabel("requests/s")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds (red dashed: fault, blue dashed: restored)")
    fig.suptitle(f"{r.scenario}: {r.title}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _latency_html(r: DrillResult) -> str:
    """Per site: p50/p99 of writes and reads sent while the fault was held, and failures."""
    rows = []
    for s in r.sites:
        cells = "".join(
            "<td></td><td></td><td></td>" if lat is None else
            f"<td>{lat.requests}</td><td>{_ms(lat.p50_ms)} / {_ms(lat.p99_ms)}</td>"
            f"<td>{lat.errors}</td>" for lat in (s.write_latency, s.read_latency))
        rows.append(f"<tr><td>{html.escape(s.site)}{'*' if s.down_by_design else ''}</td>"
                    f"{cells}</tr>")
    return ("<table><tr><th>site</th><th>writes</th><th>write p50 / p99 (ms)</th>"
            "<th>write errors</th><th>reads</th><th>read p50 / p99 (ms)</th>"
            f"<th>read errors</th></tr>{''.join(rows)}</table>")


def _details_html(r: DrillResult) -> str:
    if not r.details:
        return ""
    import json

    return (f"<details><summary>the scenario's own figures</summary><pre>"
            f"{html.escape(json.dumps(r.details, indent=1, default=str))}</pre></details>")


def suite_html(results: list[DrillResult], pngs: dict[str, str], path: Path,
               title: str) -> Path:
    """One page: the summary table, then each drill's checks, details and timeline."""
    esc = html.escape
    sites = sorted({s.site for r in results for s in r.sites})
    head = "".join(f"<th>writes {esc(s)} (s)</th><th>reads {esc(s)} (s)</th>" for s in sites)
    rows = []
    for r in results:
        by = {s.site: s for s in r.sites}
        cells = "".join(
            f"<td>{_s(by[s].write.seconds)}{'*' if by[s].down_by_design else ''}</td>"
            f"<td>{_s(by[s].read.seconds)}{'*' if by[s].down_by_design else ''}</td>"
            if s in by else "<td></td><td></td>" for s in sites)
        rows.append(
            f"<tr class={'ok' if r.ok else 'bad'}><td><a href='#{esc(r.scenario)}'>"
            f"{esc(r.scenario)}</a></td><td>{esc(victims(r))}</td>{cells}"
            f"<td>≤{r.target_write_s:.0f}</td>"
            f"<td>{r.acked}</td><td>{len(r.lost)}</td><td>{sum(r.server_errors.values())}</td>"
            f"<td>{'yes' if r.two_primaries else 'no'}</td>"
            f"<td>{esc(r.leader_before)}→{esc(r.leader_after or '?')}</td>"
            f"<td>{'yes' if r.ok else 'NO: ' + esc(', '.join(failed_checks(r)))}</td></tr>")
    sections = []
    for r in results:
        checks = "".join(f"<li class={'ok' if ok else 'bad'}>{esc(k)}: "
                         f"{'yes' if ok else 'NO'}"
                         + (f" ({esc(r.check_notes[k])})" if k in r.check_notes else "")
                         + "</li>" for k, ok in r.checks().items())
        sts = "; ".join(f"site {esc(s.site)}: " + ", ".join(
            f"{esc(k)}×{v}" for k, v in s.statuses.items()) for s in r.sites)
        p = r.protection.to_doc()
        img = f"<img src='{esc(pngs[r.scenario])}' alt='timeline'>" if r.scenario in pngs \
            else ""
        sections.append(
            f"<h2 id='{esc(r.scenario)}'>{esc(r.scenario)}: {esc(r.title)}</h2>"
            f"<p>acted on: {esc(victims(r))}</p><ul>{checks}"
            f"</ul><p>answers by status: {sts}</p><p>protected again after the restore: "
            f"synchronous standby {p['sync_standby_s']} s, every PostgreSQL member "
            f"{p['members_s']} s, Redis replicas "
            f"{p['redis_replicas_s']} s, WAL archiving {p['wal_archiving_s']} s</p>"
            f"<p>fault held {r.fault_end - r.fault_start:.1f} s; acknowledged writes "
            f"{r.acked}, lost {len(r.lost)}; 503 without Retry-After: {r.bare_503}</p>"
            f"{_latency_html(r)}{_details_html(r)}{img}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            ".ok{color:#2e7d32}.bad{color:#c62828}img{max-width:100%}</style></head><body>"
            f"<h1>{esc(title)}</h1><p>* the site's virtual IP is down by design in that "
            "drill (its users go to another site); its outage is not held to the target."
            f"</p><table><tr><th>scenario</th><th>acted on</th>{head}<th>target (s)</th>"
            "<th>acked</th><th>lost</th><th>5xx≠503</th><th>2 primaries</th><th>leader</th>"
            "<th>ok</th>"
            f"</tr>{''.join(rows)}</table>{''.join(sections)}</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
