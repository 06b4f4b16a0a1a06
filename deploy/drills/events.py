"""What each request of a drill saw, and what users lost, computed from it (pure functions).

Times are the epoch (time.time()): the lab's servers share the machine's clock, so the samples
taken on them (deploy.drills.watch) line up with the requests'.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

NO_ANSWER = 0  # the request got no HTTP answer (refused, reset, timed out)


@dataclass(frozen=True)
class Event:
    """One request: sent at `t0`, answered (or given up on) at `t1`."""

    t0: float
    t1: float
    site: str
    kind: str  # "write" | "read"
    status: int  # HTTP status, NO_ANSWER when there was none
    post_id: str | None = None  # an acknowledged write's post
    retry_after: bool = False  # a 503 carried Retry-After

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_doc(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Outage:
    """First failure → first success after the last failure (None: never recovered)."""

    seconds: float | None
    first_failure: float | None = None
    recovered_at: float | None = None
    failures: int = 0

    def to_doc(self) -> dict[str, object]:
        return {"seconds": None if self.seconds is None else round(self.seconds, 2),
                "first_failure": self.first_failure, "recovered_at": self.recovered_at,
                "failures": self.failures}


def outage(events: Iterable[Event], site: str, kind: str, since: float) -> Outage:
    """Outage of one site's writes or reads from `since` on (the fault's start): from the first
    failed request (or `since` when it was sent before) to the answer of the first successful
    request sent after the last failure. A request in flight at `since` counts."""
    mine = sorted((e for e in events if e.site == site and e.kind == kind and e.t1 >= since),
                  key=lambda e: e.t0)
    failed = [e for e in mine if not e.ok]
    if not failed:
        return Outage(0.0)
    start = max(since, failed[0].t0)
    last = failed[-1].t0
    after = [e for e in mine if e.ok and e.t0 >= last]
    if not after:
        return Outage(None, start, None, len(failed))
    end = after[0].t1
    return Outage(end - start, start, end, len(failed))


def statuses(events: Iterable[Event]) -> dict[str, int]:
    """Count of answers by status ("0" for no answer), as strings for JSON."""
    return {str(k): v for k, v in sorted(Counter(e.status for e in events).items())}


def server_errors(events: Iterable[Event]) -> dict[str, int]:
    """5xx answers other than 503 (unavailability is 503 with Retry-After; a 500 is a bug)."""
    return {str(k): v for k, v in sorted(Counter(
        e.status for e in events if e.status >= 500 and e.status != 503).items())}


def bare_503(events: Iterable[Event]) -> int:
    """503 answers without Retry-After (HAProxy's own, with no server to send to)."""
    return sum(1 for e in events if e.status == 503 and not e.retry_after)


def acknowledged(events: Iterable[Event]) -> list[str]:
    return [e.post_id for e in events if e.kind == "write" and e.ok and e.post_id]


def failed_requests(events: Iterable[Event], allowed: frozenset[int] = frozenset()
                    ) -> dict[str, int]:
    """Answers that failed the user, by status ("0" for no answer): anything but 2xx, less
    the statuses a scenario allows."""
    return {str(k): v for k, v in sorted(Counter(
        e.status for e in events if not e.ok and e.status not in allowed).items())}


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank q-th percentile (None for no values): the value at or below which q %
    of them lie, one of the values themselves (no interpolation between two requests)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """One site's requests of one kind sent in a window: p99 and p50 of the time users waited
    (failed and timed-out requests included: the user waited for them too) and the failures."""

    requests: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int

    def to_doc(self) -> dict[str, object]:
        r = (lambda v: None if v is None else round(v, 1))  # noqa: E731
        return {"requests": self.requests, "p50_ms": r(self.p50_ms), "p99_ms": r(self.p99_ms),
                "errors": self.errors}


def latency(events: Iterable[Event], site: str, kind: str, start: float, end: float
            ) -> Latency:
    """Latency of `site`'s `kind` requests sent from `start` to `end` (the fault's window)."""
    mine = [e for e in events if e.site == site and e.kind == kind and start <= e.t0 <= end]
    waits = [(e.t1 - e.t0) * 1000 for e in mine]
    return Latency(len(mine), percentile(waits, 50), percentile(waits, 99),
                   sum(1 for e in mine if not e.ok))


def per_second(events: Iterable[Event], start: float, end: float
               ) -> dict[str, list[int]]:
    """Requests answered per second, by status class ("2xx", "503", "5xx", "4xx", "none"),
    one bucket per whole second from `start` to `end` (for the timeline)."""
    n = max(1, int(end - start) + 1)
    out: dict[str, list[int]] = {}
    for e in events:
        i = int(e.t1 - start)
        if 0 <= i < n:
            out.setdefault(status_class(e.status), [0] * n)[i] += 1
    return out


def status_class(status: int) -> str:
    if status == NO_ANSWER:
        return "no answer"
    if status == 503:
        return "503"
    return f"{status // 100}xx"


@dataclass(frozen=True)
class RoleSample:
    """A PostgreSQL member's answer at `t`: True primary (not in recovery), False replica,
    None no answer."""

    t: float
    member: str
    primary: bool | None


def parse_role_line(member: str, line: str) -> RoleSample | None:
    """`<epoch> t|f|x` printed by the sampler on a member (watch.ROLE_LOOP)."""
    parts = line.split()
    if len(parts) != 2:
        return None
    try:
        t = float(parts[0])
    except ValueError:
        return None
    return RoleSample(t, member, {"f": True, "t": False}.get(parts[1]))


def primary_spans(samples: Iterable[RoleSample]) -> dict[str, list[tuple[float, float]]]:
    """Per member, the spans in which it answered as primary: from a first primary sample to the
    last one before it answered otherwise or stopped answering (never stretched past what was
    seen, so a demotion between two samples cannot make a false overlap)."""
    out: dict[str, list[tuple[float, float]]] = {}
    by_member: dict[str, list[RoleSample]] = {}
    for s in samples:
        by_member.setdefault(s.member, []).append(s)
    for member, rows in by_member.items():
        spans: list[tuple[float, float]] = []
        start: float | None = None
        last = 0.0
        for s in sorted(rows, key=lambda r: r.t):
            if s.primary:
                start = s.t if start is None else start
                last = s.t
            elif start is not None:
                spans.append((start, last))
                start = None
        if start is not None:
            spans.append((start, last))
        out[member] = spans
    return out


def two_primaries(samples: Iterable[RoleSample]) -> list[tuple[float, str, str]]:
    """Moments two different members were both seen as primary (overlapping spans):
    (start of the overlap, member, member). Empty when there never were two."""
    spans = primary_spans(samples)
    names = sorted(spans)
    hits: list[tuple[float, str, str]] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for s0, s1 in spans[a]:
                for o0, o1 in spans[b]:
                    if max(s0, o0) <= min(s1, o1):
                        hits.append((round(max(s0, o0), 2), a, b))
    return sorted(hits)
