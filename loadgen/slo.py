"""SLO gates over Locust's response-time histograms (pure Python: no Locust import).

The Locust master snapshots its cumulative per-endpoint stats at step boundaries
(loadgen/recorder.py); the difference of two snapshots is the exact histogram of a step, from
which p50/p95/p99 are computed the way Locust computes them (buckets of ~2 significant digits).
The runner and the recorder (early stop of a calibration) judge steps with the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SLO = Path(__file__).resolve().parent / "slo.yaml"
AGGREGATED = "Aggregated"


class SloError(ValueError):
    """The SLO file is malformed; the message names the field and the fix."""


@dataclass(frozen=True)
class Slo:
    p99_ms: dict[str, float]
    default_p99_ms: float
    error_rate_max: float
    endpoint_error_rate_max: float
    min_requests: int
    load_reached_min: float = 0.75  # a step must reach this share of its target requests/s
    soak_p99_drift_max: float = 2.0  # soak: last window's p99 / first window's p99

    def p99_limit(self, endpoint: str) -> float:
        return self.p99_ms.get(endpoint, self.default_p99_ms)

    def to_json(self) -> dict[str, Any]:
        return {"p99_ms": {"default": self.default_p99_ms, **self.p99_ms},
                "error_rate_max": self.error_rate_max,
                "endpoint_error_rate_max": self.endpoint_error_rate_max,
                "min_requests": self.min_requests, "load_reached_min": self.load_reached_min,
                "soak_p99_drift_max": self.soak_p99_drift_max}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "slo") -> Slo:
        try:
            p99 = dict(doc.get("p99_ms") or {})
            default = float(p99.pop("default", 500))
            return cls(p99_ms={str(k): float(v) for k, v in p99.items()}, default_p99_ms=default,
                       error_rate_max=float(doc.get("error_rate_max", 0.01)),
                       endpoint_error_rate_max=float(doc.get("endpoint_error_rate_max", 0.05)),
                       min_requests=int(doc.get("min_requests", 20)),
                       load_reached_min=float(doc.get("load_reached_min", 0.75)),
                       soak_p99_drift_max=float(doc.get("soak_p99_drift_max", 2.0)))
        except (TypeError, ValueError, AttributeError) as exc:
            raise SloError(f"{where}: p99_ms values and rates must be numbers ({exc})") from exc


def load_slo(path: Path | str | None = None) -> Slo:
    p = Path(path) if path else DEFAULT_SLO
    if not p.exists():
        raise SloError(f"{p}: no such SLO file — pass --slo FILE or use {DEFAULT_SLO}")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SloError(f"{p}: not valid YAML — fix the syntax") from exc
    if not isinstance(doc, Mapping):
        raise SloError(f"{p}: expected a mapping with p99_ms and error_rate_max")
    return Slo.from_json(doc, str(p))


# ---- histograms ---------------------------------------------------------------------------
def percentile(hist: Mapping[int | str, int], count: int, q: float) -> int:
    """Locust's percentile: the bucket that `q` of `count` requests finished within."""
    if count <= 0:
        return 0
    n_at = int(count * q)
    done = 0
    for t in sorted((int(k) for k in hist), reverse=True):
        done += int(hist[t] if t in hist else hist[str(t)])
        if count - done <= n_at:
            return t
    return 0


def hist_diff(new: Mapping[Any, int], old: Mapping[Any, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    olds = {int(k): int(v) for k, v in old.items()}
    for k, v in new.items():
        d = int(v) - olds.get(int(k), 0)
        if d:
            out[int(k)] = d
    return out


@dataclass
class EndpointStats:
    """One endpoint (or the aggregate) over one window."""

    name: str
    requests: int
    failures: int
    hist: dict[int, int]
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def p(self, q: float) -> int:
        return percentile(self.hist, sum(self.hist.values()), q)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "requests": self.requests, "failures": self.failures,
                "rps": round(self.rps, 2), "error_rate": round(self.error_rate, 5),
                "p50_ms": self.p(0.5), "p95_ms": self.p(0.95), "p99_ms": self.p(0.99)}


def window(new: Mapping[str, Mapping[str, Any]], old: Mapping[str, Mapping[str, Any]],
           seconds: float) -> dict[str, EndpointStats]:
    """Per-endpoint stats between two snapshots {key: {requests, failures, hist}}."""
    out: dict[str, EndpointStats] = {}
    for key, cur in new.items():
        prev = old.get(key, {"requests": 0, "failures": 0, "hist": {}})
        req = int(cur["requests"]) - int(prev["requests"])
        fail = int(cur["failures"]) - int(prev["failures"])
        if req <= 0 and fail <= 0:
            continue
        out[key] = EndpointStats(key, req, fail, hist_diff(cur["hist"], prev["hist"]), seconds)
    return out


@dataclass
class Verdict:
    passed: bool
    breaches: list[str] = field(default_factory=list)
    unjudged: list[str] = field(default_factory=list)  # too few requests for a p99


def judge(stats: Mapping[str, EndpointStats], slo: Slo) -> Verdict:
    """Gate one step: every endpoint's p99 and error rate, and the aggregate error rate."""
    v = Verdict(passed=True)
    agg = stats.get(AGGREGATED)
    if agg is None or agg.requests == 0:
        v.passed = False
        v.breaches.append("no requests completed in this step")
        return v
    if agg.error_rate > slo.error_rate_max:
        v.breaches.append(f"errors {agg.error_rate:.2%} > {slo.error_rate_max:.2%}")
    for key, st in sorted(stats.items()):
        if key == AGGREGATED:
            continue
        if st.requests and st.error_rate > slo.endpoint_error_rate_max and st.failures > 1:
            v.breaches.append(f"{key}: errors {st.error_rate:.1%} > "
                              f"{slo.endpoint_error_rate_max:.0%}")
        if st.requests < slo.min_requests:
            v.unjudged.append(key)
            continue
        p99, limit = st.p(0.99), slo.p99_limit(key)
        if p99 > limit:
            v.breaches.append(f"{key}: p99 {p99} ms > {limit:.0f} ms")
    v.passed = not v.breaches
    return v
