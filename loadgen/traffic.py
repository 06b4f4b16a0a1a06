"""The traffic model of the load tests, read from the capacity profile (`freehold capacity`'s).

One source of truth: the same profile file (`loadgen/profiles/default.yaml`) gives the capacity
plan its action mix and gives the Locust users their task weights and think times. Every number
carries the `source` the profile cites; this module only reads and derives.

Derived figures (per action kind `k`, `A` accounts):
    daily actives      D = A * dau_ratio
    actions per second  a_k = D * actions_per_dau_per_day[k] / 86,400      (daily average)
    peak requests/s     R = sum_k a_k * requests_per_action[k] * peak_to_average
The Locust task weight of kind `k` is its share of actions, sum_k w_k = 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
DEFAULT_PROFILE = ROOT / "profiles" / "default.yaml"
SECONDS_PER_DAY = 86_400

# What one action of each kind costs in HTTP requests, and the stats names they appear under.
# (The Locust users in loadgen/users.py issue exactly these requests per action.)
ACTION_REQUESTS: dict[str, tuple[str, ...]] = {
    "home_feed": ("GET /timelines/home",),
    "thread": ("GET /posts/{id}/thread",),
    "profile": ("GET /accounts/{id}", "GET /accounts/{id}/posts"),
    "discover": ("GET /discover/*",),
    "search": ("GET /search/*",),
    "notifications": ("GET /notifications",),
    "post": ("POST /posts",),
    "reply": ("POST /posts (reply)",),
    "echo": ("POST /posts/{id}/echo",),
    "upvote": ("POST /posts/{id}/upvote",),
    "follow": ("POST /accounts/{id}/follow",),
    "report": ("POST /reports",),
    "login": ("POST /auth/login",),
    "image_upload": ("POST /media", "POST /posts (image)"),
    "signup": ("POST /accounts", "POST /accounts/{id}/follow (newcomer)"),
}
ACTIONS = tuple(ACTION_REQUESTS)

# Names the profile may use for each action kind (the capacity engineer's vocabulary first).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "home_feed": ("home_feed", "feed_reads", "feed_read", "home_feed_reads", "feed",
                  "timeline_reads", "home"),
    "thread": ("thread", "thread_opens", "thread_open", "threads", "post_views"),
    "profile": ("profile", "profile_views", "profile_view", "profiles"),
    "discover": ("discover", "discover_views", "discover_reads", "trending"),
    "search": ("search", "searches"),
    "notifications": ("notifications", "notification_reads", "notifications_reads"),
    "post": ("post", "posts", "post_creates", "posts_created", "new_posts"),
    "reply": ("reply", "replies"),
    "echo": ("echo", "echoes", "reposts"),
    "upvote": ("upvote", "upvotes", "likes"),
    "follow": ("follow", "follows"),
    "report": ("report", "reports"),
    "login": ("login", "logins"),
    "image_upload": ("image_upload", "image_uploads", "uploads", "media_uploads", "images"),
    "signup": ("signup", "signups", "sign_ups"),
}
MIX_KEYS = ("actions_per_dau_per_day", "actions_per_dau", "actions_per_daily_active_per_day",
            "action_mix", "actions")
DAU_KEYS = ("dau_ratio", "daily_active_ratio", "dau_per_account", "dau_fraction",
            "daily_actives_ratio", "dau")
PEAK_KEYS = ("peak_to_average", "peak_to_average_factor", "peak_factor", "peak_ratio")
THINK_KEYS = ("think_time_s", "think_time", "think_times", "think_time_seconds")
SKEW_KEYS = ("zipf_s", "popularity_zipf_s", "read_skew_zipf_s", "zipf_exponent")
GROWTH_KEYS = ("surge_days", "surge_window_days")


class ProfileError(ValueError):
    """The profile lacks a number the traffic model needs; the message names it and the fix."""


@dataclass(frozen=True)
class Figure:
    value: float
    source: str


@dataclass
class TrafficModel:
    profile: Path
    dau_ratio: Figure
    peak_to_average: Figure
    actions_per_dau: dict[str, Figure]
    think_min_s: Figure
    think_max_s: Figure
    zipf_s: Figure
    surge_days: Figure | None = None
    extras: dict[str, Figure] = field(default_factory=dict)

    # ---- derived -------------------------------------------------------------------------
    @property
    def think_mean_s(self) -> float:
        return (self.think_min_s.value + self.think_max_s.value) / 2

    def actions_per_day(self) -> float:
        """Actions one daily active performs per day, all kinds (sign-ups excluded)."""
        return sum(f.value for k, f in self.actions_per_dau.items() if k != "signup")

    def weights(self, with_signup: float = 0.0) -> dict[str, float]:
        """Share of actions per kind (sums to 1); `with_signup` adds a sign-up share on top."""
        total = self.actions_per_day()
        w = {k: f.value / total for k, f in self.actions_per_dau.items()
             if k != "signup" and f.value > 0}
        if with_signup > 0:
            w = {k: v * (1 - with_signup) for k, v in w.items()}
            w["signup"] = with_signup
        return w

    def requests_per_action(self, weights: Mapping[str, float] | None = None) -> float:
        """Mean HTTP requests per action under a mix (default: the profile's mix)."""
        w = weights or self.weights()
        return sum(v * len(ACTION_REQUESTS[k]) for k, v in w.items())

    def daily_actives(self, accounts: float) -> float:
        return accounts * self.dau_ratio.value

    def average_rps(self, accounts: float) -> float:
        """Daily-average requests/s of `accounts` accounts (all kinds)."""
        d = self.daily_actives(accounts)
        return d * self.actions_per_day() * self.requests_per_action() / SECONDS_PER_DAY

    def peak_rps(self, accounts: float) -> float:
        return self.average_rps(accounts) * self.peak_to_average.value

    def peak_rps_by_action(self, accounts: float) -> dict[str, float]:
        d = self.daily_actives(accounts)
        p = self.peak_to_average.value
        return {k: d * f.value * len(ACTION_REQUESTS[k]) / SECONDS_PER_DAY * p
                for k, f in self.actions_per_dau.items() if k != "signup"}

    def users_for_rps(self, rps: float, think_scale: float = 1.0,
                      response_s: float = 0.02) -> int:
        """Locust users that produce `rps` requests/s (closed loop: one action per think time)."""
        per_user = self.requests_per_action() / (self.think_mean_s * think_scale + response_s)
        return max(1, math.ceil(rps / per_user))

    def inputs(self) -> list[tuple[str, float, str]]:
        """(name, value, source) rows for the report's inputs table."""
        rows = [("dau_ratio", self.dau_ratio.value, self.dau_ratio.source),
                ("peak_to_average", self.peak_to_average.value, self.peak_to_average.source)]
        rows += [(f"actions_per_dau.{k}", f.value, f.source)
                 for k, f in self.actions_per_dau.items()]
        rows += [("think_time_s.min", self.think_min_s.value, self.think_min_s.source),
                 ("think_time_s.max", self.think_max_s.value, self.think_max_s.source),
                 ("zipf_s", self.zipf_s.value, self.zipf_s.source)]
        if self.surge_days:
            rows.append(("surge_days", self.surge_days.value, self.surge_days.source))
        return rows

    def to_json(self) -> dict[str, Any]:
        return {"profile": str(self.profile),
                "inputs": [{"name": n, "value": v, "source": s} for n, v, s in self.inputs()],
                "weights": self.weights(), "think_min_s": self.think_min_s.value,
                "think_max_s": self.think_max_s.value, "zipf_s": self.zipf_s.value}


# ---- reading the profile ------------------------------------------------------------------
def _walk(doc: Any, path: str = "") -> Iterable[tuple[str, str, Any]]:
    """(dotted path, key, value) of every mapping entry, breadth first."""
    queue: list[tuple[str, Any]] = [(path, doc)]
    while queue:
        here, node = queue.pop(0)
        if isinstance(node, Mapping):
            for k, v in node.items():
                p = f"{here}.{k}" if here else str(k)
                yield p, str(k), v
                if isinstance(v, Mapping):
                    queue.append((p, v))


def find_key(doc: Any, keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:  # preferred names first
        for p, k, v in _walk(doc):
            if k == key:
                return p, v
    return None


def figure_of(raw: Any, where: str, inherited_source: str = "") -> Figure:
    """A number, or {value|per_day|mean: n, source: s}."""
    if isinstance(raw, bool):
        raise ProfileError(f"{where}: expected a number, got {raw!r}")
    if isinstance(raw, int | float):
        if not inherited_source:
            raise ProfileError(f"{where}: {raw} has no source — give it as "
                               "{value: N, source: 'where the number comes from'}")
        return Figure(float(raw), inherited_source)
    if isinstance(raw, Mapping):
        for vk in ("value", "per_day", "mean", "ratio", "factor"):
            if vk in raw and isinstance(raw[vk], int | float) and not isinstance(raw[vk], bool):
                src = str(raw.get("source") or inherited_source or "").strip()
                if not src:
                    raise ProfileError(f"{where}.source: missing — cite where {raw[vk]} "
                                       "comes from (a measurement file or a published figure)")
                return Figure(float(raw[vk]), src)
    raise ProfileError(f"{where}: expected a number with a source, got {raw!r}")


def _mix(doc: Any, path: Path) -> dict[str, Figure]:
    found = find_key(doc, MIX_KEYS)
    if found is None:
        raise ProfileError(f"{path}: actions_per_dau_per_day: missing — add the actions per "
                           f"daily active user per day by kind ({', '.join(ACTIONS)})")
    where, raw = found
    if not isinstance(raw, Mapping):
        raise ProfileError(f"{path}: {where}: expected a mapping of action kind -> per day")
    shared = str(raw.get("source") or "") if isinstance(raw.get("source"), str) else ""
    out: dict[str, Figure] = {}
    for kind, names in SYNONYMS.items():
        for n in names:
            if n in raw:
                out[kind] = figure_of(raw[n], f"{path}: {where}.{n}", shared)
                break
    unknown = [k for k in raw if k != "source" and not any(k in v for v in SYNONYMS.values())]
    if unknown:
        raise ProfileError(f"{path}: {where}.{unknown[0]}: unknown action kind — use one of "
                           f"{', '.join(ACTIONS)}")
    if "home_feed" not in out:
        raise ProfileError(f"{path}: {where}.home_feed: missing — home feed reads per daily "
                           "active per day")
    return out


def _one(doc: Any, keys: tuple[str, ...], path: Path, what: str) -> Figure:
    found = find_key(doc, keys)
    if found is None:
        raise ProfileError(f"{path}: {keys[0]}: missing — add {what} with its source")
    where, raw = found
    return figure_of(raw, f"{path}: {where}")


def _think(doc: Any, path: Path) -> tuple[Figure, Figure]:
    found = find_key(doc, THINK_KEYS)
    if found is None:
        raise ProfileError(f"{path}: think_time_s: missing — add {{min: s, max: s, source: ...}}"
                           " (seconds a user pauses between actions)")
    where, raw = found
    if not isinstance(raw, Mapping) or "min" not in raw or "max" not in raw:
        raise ProfileError(f"{path}: {where}: expected {{min: s, max: s, source: ...}}")
    src = str(raw.get("source") or "")
    lo = figure_of(raw["min"], f"{path}: {where}.min", src)
    hi = figure_of(raw["max"], f"{path}: {where}.max", src)
    if not 0 <= lo.value <= hi.value:
        raise ProfileError(f"{path}: {where}: need 0 <= min <= max, got {lo.value}, {hi.value}")
    return lo, hi


def read_mapping(p: Path, error: type[Exception] = ProfileError) -> dict[str, Any]:
    """A profile file's top-level mapping; `error` (one line, with the line number of a YAML
    syntax error) otherwise. Shared with deploy/capacity/inputs.py."""
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise error(f"{p}{line}: not valid YAML — fix the syntax") from exc
    if not isinstance(doc, Mapping):
        raise error(f"{p}: expected a mapping at the top")
    return dict(doc)


def load_model(path: Path | str | None = None) -> TrafficModel:
    """The traffic model of a capacity profile; ProfileError (one line) when a number is missing."""
    p = Path(path) if path else DEFAULT_PROFILE
    if not p.exists():
        raise ProfileError(f"{p}: no such profile — pass --profile FILE (the capacity profile)")
    doc = read_mapping(p)
    dau = _one(doc, DAU_KEYS, p, "the share of accounts active on a day")
    peak = _one(doc, PEAK_KEYS, p, "the peak-to-average request factor")
    if not 0 < dau.value <= 1:
        raise ProfileError(f"{p}: dau_ratio: {dau.value} is not in (0, 1]")
    if peak.value < 1:
        raise ProfileError(f"{p}: peak_to_average: {peak.value} must be >= 1")
    lo, hi = _think(doc, p)
    surge = find_key(doc, GROWTH_KEYS)
    return TrafficModel(profile=p, dau_ratio=dau, peak_to_average=peak,
                        actions_per_dau=_mix(doc, p), think_min_s=lo, think_max_s=hi,
                        zipf_s=_one(doc, SKEW_KEYS, p, "the Zipf exponent of read popularity"),
                        surge_days=figure_of(surge[1], f"{p}: {surge[0]}") if surge else None)
