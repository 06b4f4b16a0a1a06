"""The plain servers as Prometheus sees them, for `freehold status` at hundreds of servers
(issue 20).

A plain server carries only what every server carries (the implied roles base and mesh, and
the monitoring exporters roles/monitoring puts everywhere): it has no component to probe, only
its units. One SSH login per server costs the server side ~0.24 CPU-s (sshd, key exchange, PAM
session, shell, systemctl), 72 CPU-s at 300 servers, more than a 20 s round on the lab's 2
cores. Every Prometheus already scrapes every server's node exporter over the mesh, so each
monitoring server's probe also asks its own Prometheus for the node job's targets
(files/prom_targets.py makes the answer small), and a plain server is judged from the freshest
scrape of it among the Prometheus that answered:

- `up`: the freshest scrape succeeded and began at most 3 scrape intervals ago. The server is
  up, its node exporter runs, its mesh tunnel and firewall let Prometheus in. Its units are not
  read: `freehold status --deep` does that over SSH.
- `down`: the freshest scrape failed (its error is kept); `stale`: the freshest scrape is
  older than 3 intervals (or there was none yet); `absent`: no Prometheus that answered has
  the server as a target. These servers are probed over SSH, so the report says why.

A server that dies shows `up` until the next scrape fails (one interval plus the scrape
timeout at most): each row says how old the scrape it was judged by is.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from freehold.deploy.spec import IMPLIED_ROLES, ClusterSpec, Server
from freehold.roles.monitoring.config import PROMETHEUS_PORT

UP, DOWN, STALE, ABSENT = "up", "down", "stale", "absent"
STALE_AFTER_INTERVALS = 3
NODE_JOB = "node"  # roles/monitoring/config.py: scrape_jobs
SCRIPT = Path(__file__).parent / "files" / "prom_targets.py"


def is_plain(server: Server) -> bool:
    """Only the roles every server carries: nothing for a component probe to ask."""
    return set(server.roles) <= set(IMPLIED_ROLES)


def plain_servers(spec: ClusterSpec) -> list[Server]:
    return [s for s in spec.servers if is_plain(s)]


def targets_command(address: str, port: int = PROMETHEUS_PORT, job: str = NODE_JOB) -> str:
    """Shell: the Prometheus at `address:port`'s active targets of `job`, one JSON line (see
    files/prom_targets.py); curl's own error and exit 3 when it does not answer."""
    url = f"http://{address}:{port}/api/v1/targets?state=active&scrapePool={job}"
    return (f"curl -sS -m 3 {shlex.quote(url)} | "
            f"python3 -c {shlex.quote(SCRIPT.read_text())} {shlex.quote(job)}")


@dataclass(frozen=True)
class Target:
    """One Prometheus's last scrape of one server."""

    monitor: str
    health: str
    age_s: float | None
    interval_s: float | None
    error: str = ""


def parse_targets(monitor: str, text: str) -> dict[str, Target]:
    """instance -> Target from the probe's `targets` section (the JSON line
    files/prom_targets.py prints). Raises ValueError for anything else."""
    line = text.strip().splitlines()[-1] if text.strip() else ""
    doc = json.loads(line)
    rows = doc.get("targets") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise ValueError("no targets list")
    out: dict[str, Target] = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 5 and isinstance(row[0], str)):
            raise ValueError(f"target row of another shape: {str(row)[:80]}")
        name, health, age, interval, error = row
        out[name] = Target(monitor, str(health), _number(age), _number(interval), str(error))
    return out


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Sighting:
    """What the freshest answering Prometheus says of one plain server."""

    server: str
    verdict: str
    target: Target | None = None
    interval_s: float = 0.0
    monitors: tuple[str, ...] = ()

    def says(self) -> str:
        """One line for the report."""
        t = self.target
        if t is None or self.verdict == ABSENT:
            return f"not a node target of the Prometheus that answered ({', '.join(self.monitors)})"
        if self.verdict == UP:
            return f"seen by Prometheus on {t.monitor} over the mesh {_ago(t.age_s)}"
        if self.verdict == DOWN:
            return (f"Prometheus on {t.monitor} failed to scrape its node exporter "
                    f"{_ago(t.age_s)}: {t.error or 'no error given'}")
        if t.age_s is None:
            return f"never scraped by Prometheus on {t.monitor} ({t.health})"
        return (f"last scraped by Prometheus on {t.monitor} {_ago(t.age_s)}, more than "
                f"{STALE_AFTER_INTERVALS} scrape intervals of {self.interval_s:g} s ({t.health})")


def _ago(age_s: float | None) -> str:
    return "at an unknown time" if age_s is None else f"{max(age_s, 0):.0f} s ago"


def judge(server: str, seen: list[Target], monitors: tuple[str, ...],
          default_interval_s: float) -> Sighting:
    """The verdict on `server` from every answering Prometheus's scrape of it: the freshest
    scrape decides (a Prometheus that fell behind does not outvote one that is current)."""
    if not seen:
        return Sighting(server, ABSENT, monitors=monitors)
    t = min(seen, key=lambda s: float("inf") if s.age_s is None else s.age_s)
    interval = t.interval_s or default_interval_s
    if t.age_s is None or t.age_s > STALE_AFTER_INTERVALS * interval:
        verdict = STALE
    elif t.health == "up":
        verdict = UP
    else:
        verdict = DOWN
    return Sighting(server, verdict, t, interval, monitors)


@dataclass
class FleetView:
    """Every plain server's Sighting, and which Prometheus answered (monitor -> node
    targets it has) or not (monitor -> why)."""

    answered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    sightings: dict[str, Sighting] = field(default_factory=dict)

    def seen_up(self, server: str) -> bool:
        s = self.sightings.get(server)
        return s is not None and s.verdict == UP

    def count(self, verdict: str) -> int:
        return sum(1 for s in self.sightings.values() if s.verdict == verdict)


def fleet_view(answers: dict[str, tuple[int | None, str]], plain: list[str],
               default_interval_s: float) -> FleetView:
    """From each monitoring server's `targets` section ((exit code, text); code None: the
    server did not answer, text saying why): the Sighting of every plain server. No
    Prometheus answering leaves every server without one (all to be probed over SSH)."""
    view = FleetView()
    per_monitor: dict[str, dict[str, Target]] = {}
    for monitor, (code, text) in answers.items():
        if code != 0:
            view.failed[monitor] = _why(code, text)
            continue
        try:
            per_monitor[monitor] = parse_targets(monitor, text)
        except ValueError as exc:
            view.failed[monitor] = f"its answer could not be read ({exc})"
            continue
        view.answered[monitor] = len(per_monitor[monitor])
    if not per_monitor:
        return view
    monitors = tuple(per_monitor)
    for name in plain:
        seen = [targets[name] for targets in per_monitor.values() if name in targets]
        view.sightings[name] = judge(name, seen, monitors, default_interval_s)
    return view


def _why(code: int | None, text: str) -> str:
    last = " ".join(text.split())[-200:]
    if code is None:
        return last or "the server did not answer"
    if code == 124:
        return "no answer within its timeout"
    return last or f"exit {code}"
