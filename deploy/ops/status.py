"""`freehold status`: gather every server's probe in parallel, classify, and say whether the
cluster is healthy. Classification is pure (sample JSON in, verdicts out) so it is unit-tested
without servers.

States: `ok`, `degraded` (works, but something is down or behind), `down` (not working),
`not deployed` (the spec has the role but nothing is installed: not a fault).

At scale (hundreds of servers): the plain servers (only base, mesh and the exporters) are judged
from the monitoring servers' Prometheus (deploy/ops/fleet.py), the others probed over SSH, one
connection per server, `parallel` at a time, each bounded by its connect and command timeouts,
the whole by a deadline (a server not done by then is down, "no answer within N s"). A plain
server Prometheus does not see up, and every plain server when no Prometheus answers, is
probed over SSH too, within the same deadline; `deep` probes every server over SSH. Each
server row says how it was judged (`via`: ssh or prometheus); the report counts servers per
site and per role, and lists the unhealthy servers first.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from freehold.deploy.ops import fleet
from freehold.deploy.ops.fleet import FleetView
from freehold.deploy.ops.probes import (
    match_units,
    parse_sections,
    parse_unit_states,
    repo_names,
    units_for,
)
from freehold.deploy.ops.remote import Outcome, run_many
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import postgres_primary_site
from freehold.deploy.ssh import SSHSettings
from freehold.roles.backup.config import BackupConfigError
from freehold.roles.monitoring.config import scrape_interval_s

log = logging.getLogger("freehold.status")

OK, DEGRADED, DOWN, NOT_DEPLOYED = "ok", "degraded", "down", "not deployed"
MAX_LAG_MB = 16.0
QUEUE_LAG_WARN = 10000


@dataclass
class Component:
    name: str
    state: str = OK
    problems: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    # said, never failing the check: facts on-call should know about a whole cluster
    notes: list[str] = field(default_factory=list)

    def bad(self, problem: str, state: str = DEGRADED) -> None:
        self.problems.append(problem)
        if self.state != DOWN:
            self.state = state

    def to_doc(self) -> dict[str, Any]:
        return {"state": self.state, "problems": self.problems, "notes": self.notes,
                "rows": self.rows}


@dataclass
class StatusReport:
    spec: str
    servers: list[dict[str, Any]]
    components: dict[str, Component]
    seconds: float = 0.0
    # how the servers were judged: "prometheus" (the plain ones; the rest over SSH), "ssh"
    # (every server: `deep`, no plain server, or no monitoring server answered)
    mode: str = "ssh"

    @property
    def problems(self) -> list[str]:
        out = [f"{name}: {p}" for name, c in self.components.items() for p in c.problems]
        return out

    @property
    def notes(self) -> list[str]:
        return [f"{name}: {n}" for name, c in self.components.items() for n in c.notes]

    @property
    def ok(self) -> bool:
        return all(c.state in (OK, NOT_DEPLOYED) for c in self.components.values())

    @property
    def unhealthy(self) -> list[dict[str, Any]]:
        return [s for s in self.servers if not healthy(s)]

    def to_doc(self) -> dict[str, Any]:
        return {"spec": self.spec, "ok": self.ok, "seconds": round(self.seconds, 2),
                "mode": self.mode, "problems": self.problems, "notes": self.notes,
                "summary": summarize(self.servers),
                "servers": self.servers,
                "components": {k: c.to_doc() for k, c in self.components.items()}}


def healthy(row: dict[str, Any]) -> bool:
    """A server row is healthy when it answered, none of its roles is down and nothing else is
    wrong with it (`error`: e.g. Prometheus cannot scrape it while SSH says its units run)."""
    return bool(row["up"]) and DOWN not in row["roles"].values() and not row.get("error")


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per site (servers up, down, unhealthy) and per role (servers ok, down, not
    deployed), and the unhealthy servers' names, from the server rows."""
    sites: dict[str, dict[str, int]] = {}
    roles: dict[str, dict[str, int]] = {}
    for r in rows:
        site = sites.setdefault(r["site"], {"servers": 0, "up": 0, "down": 0, "unhealthy": 0})
        site["servers"] += 1
        site["up" if r["up"] else "down"] += 1
        site["unhealthy"] += not healthy(r)
        for role, state in r["roles"].items():
            count = roles.setdefault(role, {"servers": 0, OK: 0, DOWN: 0, NOT_DEPLOYED: 0})
            count["servers"] += 1
            count[state] = count.get(state, 0) + 1
    via: dict[str, int] = {}   # how the servers were judged: ssh / prometheus
    for r in rows:
        how = r.get("via", "ssh")
        via[how] = via.get(how, 0) + 1
    return {"servers": len(rows), "up": sum(1 for r in rows if r["up"]),
            "unhealthy": [r["server"] for r in rows if not healthy(r)],
            "via": via, "sites": sites, "roles": roles}


def unhealthy_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Down servers first, then servers with a role down, then the rest; by site and name."""
    def rank(r: dict[str, Any]) -> tuple[int, str, str]:
        return (0 if not r["up"] else 1 if not healthy(r) else 2, r["site"], r["server"])

    return sorted(rows, key=rank)


# ---- per component classification (pure) -----------------------------------------------

def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None


def classify_servers(spec: ClusterSpec, outcomes: dict[str, Outcome],
                     sections: dict[str, dict[str, tuple[int | None, str]]],
                     view: FleetView | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, Component]]:
    """Per server: reachable, and per role its units' states. Per role: a Component (a role
    with nothing installed anywhere is `not deployed`). A plain server with no SSH outcome
    that `view` sees up is up with every role ok, `via` prometheus; a plain server probed over
    SSH that Prometheus failed to scrape while it answers is unhealthy, saying so in `error`."""
    rows: list[dict[str, Any]] = []
    per_role: dict[str, list[tuple[str, str, dict[str, str]]]] = {}
    dead: set[str] = set()
    for srv in spec.servers:
        out = outcomes.get(srv.name)
        seen = view.sightings.get(srv.name) if view is not None else None
        if out is None and seen is not None and seen.verdict == fleet.UP:
            roles = {role: OK for role in units_for(spec, srv)}
            for role in roles:
                per_role.setdefault(role, []).append((srv.name, OK, {}))
            rows.append({"server": srv.name, "site": srv.site, "provider": srv.provider,
                         "up": True, "error": "", "seconds": None, "roles": roles,
                         "via": "prometheus", "prometheus": seen.says(),
                         "seen_by": seen.target.monitor if seen.target else None,
                         "seen_s": seen.target.age_s if seen.target else None})
            continue
        up = bool(out and out.reachable and out.code is not None)
        found = parse_unit_states(sections.get(srv.name, {})) if up else {}
        roles = {}
        for role, units in units_for(spec, srv).items():
            if not up:
                state, unit_states = DOWN, {}
            else:
                unit_states = match_units(units, found)
                # a unit missing: the role was never deployed here (another role may have
                # installed some of the same packages, e.g. HAProxy for pgbouncer)
                if any(s == "missing" for s in unit_states.values()):
                    state = NOT_DEPLOYED
                elif all(s == "active" for s in unit_states.values()):
                    state = OK
                else:
                    state = DOWN
            roles[role] = state
            per_role.setdefault(role, []).append((srv.name, state, unit_states))
        if not up:
            dead.add(srv.name)
        error = "" if up else (out.error if out else "not asked")
        if up and seen is not None and seen.verdict == fleet.DOWN:
            error = f"answers over SSH, but {seen.says()}"
        row = {"server": srv.name, "site": srv.site, "provider": srv.provider,
               "up": up, "error": error,
               "seconds": round(out.seconds, 2) if out else None,
               "roles": roles, "via": "ssh"}
        if seen is not None:
            row["prometheus"] = seen.says()
        rows.append(row)
    comps: dict[str, Component] = {}
    for role, entries in per_role.items():
        comp = Component(f"role {role}")
        states = [s for _, s, _ in entries]
        # servers that answered and where the role has units to look at
        known = [s for (name, s, units) in entries if name not in dead and units]
        # nothing installed on any server that answered: the role is not deployed (a dead
        # server cannot tell, and stays down)
        not_deployed = bool(known) and all(s == NOT_DEPLOYED for s in known)
        if not_deployed:
            comp.state = NOT_DEPLOYED
        for name, state, units in entries:
            comp.rows.append({"server": name, "state": state, "units": units})
            if state == DOWN and name in dead:
                if not not_deployed:
                    comp.bad(f"{name}: server down")
            elif state == DOWN:
                bad = [u for u, s in units.items() if s != "active"]
                comp.bad(f"{name}: {', '.join(bad) or 'units'} not running")
            elif state == NOT_DEPLOYED and comp.state != NOT_DEPLOYED:
                comp.bad(f"{name}: not deployed (the role runs on other servers)")
        if comp.state != NOT_DEPLOYED and states and all(s == DOWN for s in states):
            comp.state = DOWN
        comps[comp.name] = comp
    return rows, comps


def classify_patroni(views: dict[str, str], expected: list[str],
                     max_lag_mb: float = MAX_LAG_MB) -> Component:
    """From Patroni's `GET /cluster` (one or more members' views): one leader, every member
    running or streaming, a synchronous standby, lag under `max_lag_mb`."""
    comp = Component("patroni")
    doc = None
    for text in views.values():
        doc = _json(text)
        if isinstance(doc, dict) and "members" in doc:
            break
        doc = None
    if doc is None:
        comp.bad("no member's REST API answered", DOWN)
        return comp
    members = {m.get("name"): m for m in doc.get("members", [])}
    leaders = [n for n, m in members.items() if m.get("role") in ("leader", "standby_leader")]
    if not leaders:
        comp.bad("no leader: writes fail", DOWN)
    elif len(leaders) > 1:
        comp.bad(f"several leaders: {', '.join(leaders)}", DOWN)
    if not any(m.get("role") == "sync_standby" for m in members.values()):
        comp.bad("no synchronous standby")
    for name in expected:
        m = members.get(name)
        if m is None:
            comp.bad(f"{name}: not a member")
            comp.rows.append({"member": name, "role": "-", "state": "absent", "lag_mb": None})
            continue
        lag = m.get("lag")
        lag_mb = round(lag / 1048576, 1) if isinstance(lag, int | float) else None
        comp.rows.append({"member": name, "role": m.get("role"), "state": m.get("state"),
                          "timeline": m.get("timeline"), "lag_mb": lag_mb})
        if m.get("state") not in ("running", "streaming"):
            comp.bad(f"{name}: {m.get('state')}")
        elif lag_mb is not None and lag_mb > max_lag_mb:
            comp.bad(f"{name}: {lag_mb} MB behind")
        elif lag is not None and not isinstance(lag, int | float):
            comp.bad(f"{name}: lag {lag}")
    return comp


def leader_outside_primary_site(spec: ClusterSpec, comp: Component) -> None:
    """After a failover the leader stays where it went (issue 21): a note until it is moved
    back, since writes then cross sites; not a problem, the cluster is whole."""
    site = postgres_primary_site(spec)
    names = {s.name for s in spec.servers}
    for row in comp.rows:
        if row.get("role") == "leader" and row.get("member") in names and site \
                and spec.server(row["member"]).site != site:
            comp.notes.append(f"leader {row['member']} is in site "
                              f"{spec.server(row['member']).site}, outside "
                              f"roles.postgres.primary_site {site}: `freehold failover --back` "
                              "moves it back")


def classify_etcd(health: dict[str, str | None], expected: list[str]) -> Component:
    """Each member's own `GET /health` ({"health":"true"}); None = server unreachable."""
    comp = Component("etcd")
    healthy = 0
    for name in expected:
        doc = _json(health.get(name) or "")
        ok = isinstance(doc, dict) and str(doc.get("health")).lower() == "true"
        healthy += ok
        comp.rows.append({"member": name, "healthy": ok,
                          "reason": "" if ok else (doc or {}).get("reason", "no answer")
                          if isinstance(doc, dict) or doc is None else str(doc)})
        if not ok:
            comp.bad(f"{name}: unhealthy")
    if expected and healthy <= len(expected) // 2:
        comp.bad(f"quorum lost: {healthy} of {len(expected)} healthy", DOWN)
    return comp


def parse_cluster_info(text: str) -> dict[str, str]:
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def classify_redis(infos: dict[str, str | None], expected: list[str]) -> Component:
    """Each node's `CLUSTER INFO`: cluster_state ok, all slots ok."""
    comp = Component("redis")
    answered = 0
    for name in expected:
        info = parse_cluster_info(infos.get(name) or "")
        state = info.get("cluster_state", "no answer")
        answered += "cluster_state" in info
        comp.rows.append({"node": name, "cluster_state": state,
                          "slots_ok": info.get("cluster_slots_ok"),
                          "known_nodes": info.get("cluster_known_nodes")})
        if state != "ok":
            comp.bad(f"{name}: cluster_state {state}")
    if expected and not any(r["cluster_state"] == "ok" for r in comp.rows):
        comp.bad("no node says the cluster is ok", DOWN)
    return comp


def classify_haproxy(stats: dict[str, str | None], expected: list[str]) -> Component:
    """HAProxy `show stat` CSV per load balancer: every backend server UP."""
    comp = Component("haproxy")
    for name in expected:
        text = stats.get(name)
        if not text:
            comp.bad(f"{name}: no stats")
            continue
        rows = list(csv.DictReader(io.StringIO(text.lstrip("# "))))
        for row in rows:
            if row.get("svname") in ("FRONTEND", "BACKEND") or not row.get("svname"):
                continue
            status = row.get("status", "")
            comp.rows.append({"lb": name, "backend": row.get("pxname"),
                              "server": row.get("svname"), "status": status})
            if not status.startswith(("UP", "no check", "OPEN")):
                comp.bad(f"{name}: {row.get('pxname')}/{row.get('svname')} {status}")
    return comp


def classify_app(releases: dict[str, str | None], ready: dict[str, str | None],
                 expected: list[str]) -> Component:
    comp = Component("app")
    seen = set()
    for name in expected:
        path = (releases.get(name) or "").strip()
        release = path.split("/releases/")[1].split("/")[0] if "/releases/" in path else None
        code = (ready.get(name) or "").strip()
        comp.rows.append({"server": name, "release": release, "readyz": code or None})
        if release:
            seen.add(release)
        if code != "200":
            comp.bad(f"{name}: /readyz {code or 'no answer'}")
    if len(seen) > 1:
        comp.bad(f"mixed releases: {', '.join(sorted(seen))}")
    return comp


def parse_streams(text: str) -> list[dict[str, Any]]:
    """`# <stream>` headers, each followed by `redis-cli --json XINFO GROUPS` output."""
    out: list[dict[str, Any]] = []
    stream = None
    for line in text.splitlines():
        if line.startswith("# "):
            stream = line[2:].strip()
            continue
        doc = _json(line)
        if stream and isinstance(doc, list):
            for g in doc:
                if isinstance(g, dict):
                    out.append({"stream": stream, "group": g.get("name"),
                                "pending": int(g.get("pending") or 0),
                                "lag": g.get("lag"), "consumers": g.get("consumers")})
    return out


def classify_queues(texts: dict[str, str | None]) -> Component:
    comp = Component("queues")
    for text in texts.values():
        if text:
            comp.rows = parse_streams(text)
            if comp.rows or "no such key" in text.lower():
                break
    for r in comp.rows:
        if isinstance(r["lag"], int) and r["lag"] > QUEUE_LAG_WARN:
            comp.bad(f"{r['stream']}/{r['group']}: {r['lag']} entries not yet read")
    return comp


def classify_alerts(answers: dict[str, str | None], expected: list[str]) -> Component:
    """Alertmanager `GET /api/v2/alerts` (active, unsilenced): any firing alert degrades."""
    comp = Component("alerts")
    got = None
    for name in expected:
        doc = _json(answers.get(name) or "")
        if isinstance(doc, list):
            got = doc if got is None else got
        else:
            comp.bad(f"{name}: Alertmanager does not answer")
    if got is None:
        if expected:
            comp.state = DOWN
        return comp
    for a in got:
        labels = a.get("labels", {})
        comp.rows.append({"alert": labels.get("alertname"), "severity": labels.get("severity"),
                          "instance": labels.get("instance", ""),
                          "since": a.get("startsAt", "")[:19],
                          "summary": a.get("annotations", {}).get("summary", "")})
        comp.bad(f"{labels.get('alertname')} {labels.get('instance', '')}".strip())
    return comp


def classify_backup(info: str | None, now: float | None = None,
                    max_age_h: float = 26.0) -> Component:
    """pgBackRest `info --output=json` on the repository host: a full backup younger than a
    day (plus slack) and WAL archived."""
    comp = Component("backup")
    doc = _json(info or "")
    if not isinstance(doc, list) or not doc:
        comp.bad("repository host does not answer", DOWN)
        return comp
    stanza = doc[0]
    backups = stanza.get("backup") or []
    status = (stanza.get("status") or {}).get("message", "")
    if not backups:
        comp.bad(f"no backup yet ({status})", DOWN)
        return comp
    last = backups[-1]
    stop = (last.get("timestamp") or {}).get("stop", 0)
    age_h = ((now or time.time()) - stop) / 3600
    archive = (stanza.get("archive") or [{}])[-1]
    comp.rows.append({"last": last.get("label"), "type": last.get("type"),
                      "age_hours": round(age_h, 1), "backups": len(backups),
                      "wal_max": archive.get("max")})
    if age_h > max_age_h:
        comp.bad(f"last backup {age_h:.0f} h old")
    if (stanza.get("status") or {}).get("code", 0) != 0:
        comp.bad(status)
    return comp


def backups_of(repos: list[tuple[str, Component]]) -> Component:
    """One `backup` component of every repository's: each row and problem names its
    repository; down only when no repository is fine (one still holds the backups and the
    WAL), degraded when some is not."""
    comp = Component("backup")
    for label, one in repos:
        comp.rows += [{"repository": label, **row} for row in one.rows]
        comp.problems += [f"{label}: {p}" for p in one.problems]
    states = [one.state for _, one in repos]
    if states and all(s == DOWN for s in states):
        comp.state = DOWN
    elif any(s != OK for s in states):
        comp.state = DEGRADED
    return comp


def parse_dns(text: str) -> tuple[int | None, list[str]]:
    """(SOA serial, A answers) from the dns probe's `dig +short` output."""
    soa, _, answers = text.partition("\n#")
    fields = soa.split()
    serial = int(fields[2]) if len(fields) >= 3 and fields[2].isdigit() else None
    return serial, sorted(a.strip() for a in answers.splitlines() if a.strip())


def classify_dns(answers: dict[str, str | None], expected: list[str],
                 want_serial: int | None) -> Component:
    """Each dns server's SOA serial (the spec's zone has `want_serial`) and the site VIPs it
    answers with now."""
    comp = Component("dns")
    serials = set()
    answering = 0
    for name in expected:
        text = answers.get(name)
        serial, vips = parse_dns(text) if text else (None, [])
        comp.rows.append({"server": name, "serial": serial, "answers": vips,
                          "healthy": serial is not None})
        if serial is None:
            comp.bad(f"{name}: does not answer for the zone")
            continue
        answering += 1
        serials.add(serial)
        if want_serial is not None and serial != want_serial:
            comp.bad(f"{name}: serves serial {serial}, the spec's zone is {want_serial} — "
                     "run `freehold deploy --roles dns`")
        if not vips:
            comp.bad(f"{name}: answers no address for the zone")
    if len(serials) > 1:
        listed = ", ".join(str(n) for n in sorted(serials))
        comp.bad(f"dns servers serve different zones (serials {listed})")
    if expected and not answering:
        comp.bad("no dns server answers", DOWN)
    return comp


# ---- gathering ---------------------------------------------------------------------------

def _texts(sections: dict[str, dict[str, tuple[int | None, str]]], names: list[str],
           section: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for n in names:
        code, text = sections.get(n, {}).get(section, (None, ""))
        out[n] = text if code == 0 else None
    return out


# what parsing a probe's answer of an unexpected shape raises (JSON of another structure,
# a field missing or of another type): that component is reported as unreadable, not skipped
PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)


def _checked(name: str, classifier: Callable[..., Component], *args: Any) -> Component:
    """`classifier(*args)`, or a `down` component saying its probe's answer could not be read
    (its traceback logged at debug level: the report says it in one line)."""
    try:
        return classifier(*args)
    except PARSE_ERRORS as exc:
        log.debug("status: the %s probe's answer could not be read", name, exc_info=True)
        comp = Component(name)
        comp.bad(f"its probe's answer could not be read ({type(exc).__name__}: {exc})", DOWN)
        return comp


def prometheus_view(spec: ClusterSpec, outcomes: dict[str, Outcome]) -> FleetView | None:
    """The plain servers as the monitoring servers' Prometheus see them, from those servers'
    `targets` sections; None when the spec has no plain server or no monitoring server."""
    monitors = [s.name for s in spec.servers_with_role("monitoring")]
    plain = [s.name for s in fleet.plain_servers(spec)]
    if not monitors or not plain:
        return None
    answers: dict[str, tuple[int | None, str]] = {}
    for name in monitors:
        out = outcomes.get(name)
        if out is None or not out.reachable or out.code is None:
            answers[name] = (None, out.error if out else "not probed")
        else:
            answers[name] = parse_sections(out.stdout).get(
                "targets", (1, "its probe printed no targets section"))
    return fleet.fleet_view(answers, plain, scrape_interval_s(spec))


def classify_prometheus(view: FleetView, rows: list[dict[str, Any]]) -> Component:
    """The Prometheus status read the plain servers from: a row per monitoring server (did it
    answer, how many node targets it has). Degraded when one does not answer (none: every
    server was probed over SSH), when plain servers are not its targets or scraped late, or
    when one answers over SSH while Prometheus fails to scrape it."""
    comp = Component("prometheus")
    for name, targets in view.answered.items():
        comp.rows.append({"monitor": name, "answered": True, "node_targets": targets,
                          "error": ""})
    for name, why in view.failed.items():
        comp.rows.append({"monitor": name, "answered": False, "node_targets": None,
                          "error": why})
        comp.bad(f"{name}: Prometheus does not answer ({why})")
    if not view.answered:
        comp.bad("monitoring unreachable: every server probed over SSH")
        return comp
    by_verdict: dict[str, list[str]] = {}
    for name, seen in view.sightings.items():
        by_verdict.setdefault(seen.verdict, []).append(name)
    if absent := by_verdict.get(fleet.ABSENT):
        comp.bad(f"not a node target of the Prometheus that answered: {_some(absent)} "
                 "(`freehold deploy --roles monitoring` adds them)")
    stale = by_verdict.get(fleet.STALE, [])
    # never scraped: a Prometheus started or given the target less than an interval ago
    never = [n for n in stale if (t := view.sightings[n].target) is None or t.age_s is None]
    if late := [n for n in stale if n not in never]:
        comp.bad(f"last scraped more than {fleet.STALE_AFTER_INTERVALS} scrape intervals ago "
                 f"(Prometheus is behind): {_some(late)}")
    if never:
        comp.notes.append(f"not scraped yet (Prometheus started or reloaded within a scrape "
                          f"interval), probed over SSH: {_some(never)}")
    failed = set(by_verdict.get(fleet.DOWN, []))
    for row in rows:
        if row["server"] in failed and row["up"] and row.get("error"):
            comp.bad(f"{row['server']}: {row['error']}")
    known = [t.age_s for n in by_verdict.get(fleet.UP, [])
             if (t := view.sightings[n].target) is not None and t.age_s is not None]
    if known:
        low, high = f"{max(min(known), 0):.0f}", f"{max(known):.0f}"
        comp.notes.append(f"{_servers(len(known))} judged by Prometheus over the mesh (last "
                          f"scrapes {low if low == high else f'{low}-{high}'} s old), not over "
                          "SSH: `--deep` reads their units")
    return comp


def _servers(n: int) -> str:
    return f"{n} server" if n == 1 else f"{n} servers"


def _some(names: list[str], shown: int = 5) -> str:
    """`3 servers (a, b, c)`, the first `shown` named."""
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{_servers(len(names))} ({', '.join(names[:shown])}{more})"


def classify(spec: ClusterSpec, outcomes: dict[str, Outcome]) -> StatusReport:
    """Everything from the probes' raw outcomes (pure: no network). A plain server without an
    outcome is judged from the monitoring servers' `targets` sections (prometheus_view)."""
    sections = {n: parse_sections(o.stdout) for n, o in outcomes.items() if o.reachable}
    view = prometheus_view(spec, outcomes)
    servers, comps = classify_servers(spec, outcomes, sections, view)

    def names(role: str) -> list[str]:
        return [s.name for s in spec.servers_with_role(role)]

    def deployed(role: str) -> bool:
        comp = comps.get(f"role {role}")
        return comp is not None and comp.state != NOT_DEPLOYED

    def texts(role: str, section: str) -> dict[str, str | None]:
        return _texts(sections, names(role), section)

    if deployed("postgres"):
        views = {k: v for k, v in texts("postgres", "patroni").items() if v}
        comps["patroni"] = _checked("patroni", classify_patroni, views, names("postgres"))
        leader_outside_primary_site(spec, comps["patroni"])
    if deployed("etcd"):
        comps["etcd health"] = _checked("etcd", classify_etcd, texts("etcd", "etcd"),
                                        names("etcd"))
    if deployed("redis"):
        comps["redis cluster"] = _checked("redis", classify_redis, texts("redis", "redis"),
                                          names("redis"))
        comps["queues"] = _checked("queues", classify_queues, texts("redis", "streams"))
    if deployed("lb"):
        comps["haproxy"] = _checked("haproxy", classify_haproxy, texts("lb", "haproxy"),
                                    names("lb"))
    if deployed("app"):
        comps["app"] = _checked("app", classify_app, texts("app", "release"),
                                texts("app", "readyz"), names("app"))
    if deployed("monitoring"):
        comps["alerts"] = _checked("alerts", classify_alerts, texts("monitoring", "alerts"),
                                   names("monitoring"))
    if view is not None and deployed("monitoring"):
        comps["prometheus"] = classify_prometheus(view, servers)
    if deployed("dns"):
        comps["dns"] = _checked("dns", classify_dns, texts("dns", "dns"), names("dns"),
                                _dns_serial(spec))
    try:
        repos = repo_names(spec)
    except BackupConfigError as exc:  # the backup is not checked at all: say so
        comps["backup"] = Component("backup")
        comps["backup"].bad(f"cannot tell which server holds the backups: {exc}", DOWN)
    else:
        if repos and deployed("backup"):
            answers = _texts(sections, repos, "backup")
            comps["backup"] = backups_of([
                (f"repo{i} {name}", _checked("backup", classify_backup, answers[name]))
                for i, name in enumerate(repos, start=1)])
    via_prometheus = any(r["via"] == "prometheus" for r in servers)
    return StatusReport(spec.name, unhealthy_first(servers), comps,
                        mode="prometheus" if via_prometheus else "ssh")


def _dns_serial(spec: ClusterSpec) -> int | None:
    """The serial of the zone the spec renders (None when the spec cannot render one)."""
    from freehold.roles.dns.config import DnsConfigError, zone_serial

    try:
        return zone_serial(spec)
    except DnsConfigError:
        return None


DEADLINE_S = 18.0


MIN_ROUND_S = 1.0  # less left of the deadline than this: the rest is not probed at all


def gather(spec: ClusterSpec, ssh: SSHSettings, deadline: float | None = DEADLINE_S,
           deep: bool = False) -> StatusReport:
    """Probe the servers (bounded: see the module's docstring) and classify. First every
    server but the plain ones, over SSH (the monitoring servers' probes ask their Prometheus);
    then, within what is left of `deadline`, the plain servers Prometheus does not see up.
    `deep`, or no monitoring server in the spec: every server over SSH in one round."""
    from freehold.deploy.ops.probes import probe_script

    def probe(server: Server) -> str:
        return probe_script(spec, server)

    started = time.monotonic()
    plain = [] if deep or not spec.servers_with_role("monitoring") else \
        fleet.plain_servers(spec)
    later = {s.name for s in plain}
    outcomes = run_many([s for s in spec.servers if s.name not in later], probe, ssh,
                        deadline=deadline)
    view = prometheus_view(spec, outcomes) if plain else None
    rest = [s for s in plain if view is None or not view.seen_up(s.name)]
    if rest:
        left = None if deadline is None else round(deadline - (time.monotonic() - started), 1)
        if left is not None and left < MIN_ROUND_S:
            outcomes.update({s.name: Outcome(s.name, False, error="not probed: the "
                                             f"{deadline:g} s deadline was spent")
                             for s in rest})
        else:
            outcomes.update(run_many(rest, probe, ssh, deadline=left))
    report = classify(spec, outcomes)
    report.seconds = time.monotonic() - started
    return report
