"""The capacity inputs of a profile, each with its source: a measurement file or a citation.

A profile number is `{value: N, source: "..."}`; it may add `measured: {file, field, by}`.
When that file exists and its field holds a positive number, the measurement wins and the
input's source says which file, which field and when it was measured; otherwise the cited
value is used and its source is prefixed "cited" (with why the measurement was not used).

An input with `unmeasured: refuse` has no quiet fallback: without its measurement the profile
is refused (CapacityProfileError saying how to measure it), unless the caller asks for the
cited value explicitly (`pessimistic=True`, `freehold capacity --pessimistic`); that value is
then marked pessimistic and the plan says so loudly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from freehold.loadgen.traffic import ProfileError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROFILE = ROOT / "loadgen" / "profiles" / "default.yaml"

# name -> (unit, what it is); all read from the profile's `capacity:` mapping
CAPACITY_FIELDS: dict[str, tuple[str, str]] = {
    "surge_peak_factor": ("x", "extra peak during the surge week"),
    "fanout_per_post": ("inserts", "fan-out inserts per post"),
    "fanout_inserts_per_core": ("inserts/s", "fan-out inserts one worker core does"),
    "worker_utilisation": ("", "target worker CPU utilisation"),
    "timeline_cached_ratio": ("", "share of accounts with a cached home timeline"),
    "timeline_bytes": ("bytes", "Redis memory of one cached timeline (800 ids)"),
    "redis_bytes_per_dau": ("bytes", "sessions, counters, queues per daily active"),
    "redis_cpu_ms_per_request": ("ms", "Redis CPU per app request"),
    "redis_cpu_us_per_fanout_insert": ("µs", "Redis CPU per fan-out insert"),
    "redis_utilisation": ("", "target Redis node utilisation"),
    "redis_memory_fraction": ("", "maxmemory as a share of RAM"),
    "redis_replicas": ("", "replicas per Redis shard"),
    "redis_cores_per_node": ("cores", "cores a Redis node is given (single-threaded + its fork)"),
    "redis_net_bytes_per_request": ("bytes", "Redis network bytes per app request"),
    "pg_cpu_ms_per_request": ("ms", "PostgreSQL CPU per app request"),
    "pg_utilisation": ("", "target PostgreSQL CPU utilisation"),
    "pg_bytes_per_post": ("bytes", "database bytes per post"),
    "pg_bytes_per_account": ("bytes", "database bytes per account"),
    "history_posts_per_account": ("posts", "posts per account at the start"),
    "storage_horizon_months": ("months", "growth the disks must hold"),
    "account_growth_per_month": ("", "account growth per month"),
    "pg_disk_fraction": ("", "share of a database disk to fill"),
    "media_bytes_per_image": ("bytes", "stored bytes per uploaded image"),
    "media_copies": ("", "copies of every media volume"),
    "media_disk_fraction": ("", "share of a media disk to fill"),
    "backup_copies": ("", "database sizes kept by backups"),
    "lb_rps_per_core": ("req/s", "requests/s one HAProxy core terminates"),
    "lb_utilisation": ("", "target load-balancer utilisation"),
    "pgbouncer_per_site": ("servers", "pgbouncer servers per serving site"),
    "etcd_members": ("servers", "etcd members"),
    "monitoring_servers": ("servers", "monitoring servers"),
    "dns_servers": ("servers", "authoritative DNS servers"),
    "generator_cores_per_1000_rps": ("cores", "Locust cores per 1,000 req/s"),
}
TOP_FIELDS: dict[str, tuple[str, str]] = {
    "app_rps_per_core": ("req/s", "app requests/s one busy core serves within the SLO"),
    "app_headroom": ("", "target app CPU utilisation at the peak"),
}
# inputs a profile may still name from an older model -> the role they sized; SIZED_BY says
# which inputs size that role now
RETIRED: dict[str, str] = {
    "pg_queries_per_request": "PostgreSQL",
    "pg_queries_per_core": "PostgreSQL",
    "redis_ops_per_request": "Redis",
    "redis_ops_per_fanout_insert": "Redis",
    "redis_ops_per_core": "Redis",
}
SIZED_BY: dict[str, tuple[str, ...]] = {
    "PostgreSQL": ("pg_cpu_ms_per_request",),
    "Redis": ("redis_cpu_ms_per_request", "redis_cpu_us_per_fanout_insert"),
}
WHOLE = {"redis_replicas", "redis_cores_per_node", "pgbouncer_per_site", "etcd_members",
         "monitoring_servers", "dns_servers", "backup_copies", "media_copies"}
FRACTIONS = {"worker_utilisation", "timeline_cached_ratio", "redis_utilisation",
             "redis_memory_fraction", "pg_utilisation", "pg_disk_fraction",
             "media_disk_fraction", "lb_utilisation", "app_headroom"}


class CapacityProfileError(ProfileError):
    """A profile the capacity model cannot use; the one-line message names the field and fix."""


@dataclass(frozen=True)
class Input:
    name: str
    value: float
    source: str
    kind: str  # "measured" | "cited"
    unit: str = ""
    file: str | None = None
    measured_at: str | None = None
    pessimistic: bool = False  # a stand-in for a missing measurement, asked for explicitly

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "value": self.value, "unit": self.unit,
                               "kind": self.kind, "source": self.source}
        if self.pessimistic:
            doc["pessimistic"] = True
        if self.file:
            doc |= {"file": self.file, "measured_at": self.measured_at}
        return doc


@dataclass(frozen=True)
class ServerClass:
    name: str
    cores: int
    ram_gib: float
    disk_gib: float
    price: float | None = None
    currency: str = ""
    price_source: str = ""
    network_gbit: float | None = None  # the server's uplink; None: network not checked


def read_doc(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CapacityProfileError(f"{path}: no such profile — pass --profile FILE (default "
                                   f"{os.path.relpath(DEFAULT_PROFILE)})")
    from freehold.loadgen.traffic import read_mapping

    return read_mapping(path, CapacityProfileError)


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def _dig(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, Mapping) or part not in doc:
            return None
        doc = doc[part]
    return doc


def resolve_file(text: str, profile: Path) -> Path:
    p = Path(os.path.expanduser(text))
    return p if p.is_absolute() else ROOT / p


def measurement(spec: Any, where: str, profile: Path) -> tuple[Input | None, str]:
    """(the measured figure, '') or (None, why not) for a `measured:` entry: one
    `{file, field, by?, per?, note?, basis?}` or a list of them, tried in order. `per` names a
    field of the same file to divide by (e.g. requests/s per app core); `note` qualifies it;
    `basis` names a field of the same file whose text says what the figure is (a calibration's
    rps_per_core_basis: per app CPU-second or per nominal core), quoted in the source."""
    specs = spec if isinstance(spec, list) else [spec]
    whys = []
    for k, one in enumerate(specs):
        got, why = _one_measurement(one, f"{where}.measured" + (f"[{k}]" if
                                                                isinstance(spec, list) else ""),
                                    profile)
        if got is not None:
            return got, ""
        whys.append(why)
    return None, "; ".join(whys)


def _one_measurement(spec: Any, where: str, profile: Path) -> tuple[Input | None, str]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("file"), str) \
            or not isinstance(spec.get("field"), str):
        raise CapacityProfileError(f"{profile}: {where}: expected {{file: PATH, field: NAME}} "
                                   "— the measurement file and its field")
    path = resolve_file(spec["file"], profile)
    shown = os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)
    if not path.exists():
        return None, f"no measurement yet ({shown} absent)"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, f"{shown} is not readable JSON"
    value = _number(_dig(doc, spec["field"]))
    if value is None or value <= 0:
        return None, f"{shown} has no positive {spec['field']}"
    field = spec["field"]
    if isinstance(spec.get("per"), str):
        per = _number(_dig(doc, spec["per"]))
        if per is None or per <= 0:
            return None, f"{shown} has no positive {spec['per']}"
        value /= per
        field = f"{field} / {spec['per']}"
    when = _dig(doc, "measured_at")
    if not isinstance(when, str) or not when:
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    by = str(spec.get("by") or "a measurement")
    note = f" — {spec['note']}" if spec.get("note") else ""
    if isinstance(spec.get("basis"), str):
        basis = _dig(doc, spec["basis"])
        note += (f" — {basis}" if isinstance(basis, str) and basis else
                 f" — the file does not say what {spec['field']} is per (no {spec['basis']}: "
                 "measured before calibrations recorded it)")
    source = f"measured by {by} on {when[:10]}, file {shown} ({field}){note}"
    return Input(name="", value=value, source=source, kind="measured", file=shown,
                 measured_at=when), ""


UNMEASURED = ("cited", "refuse")  # what `unmeasured:` may say (cited: the default)


def read_input(raw: Any, name: str, where: str, profile: Path, unit: str = "",
               pessimistic: bool = False) -> Input:
    """One input from `{value, source, measured?, unmeasured?}`; CapacityProfileError names
    the field. `pessimistic`: use the cited value of an `unmeasured: refuse` input whose
    measurement is missing, instead of refusing."""
    if raw is None:
        raise CapacityProfileError(f"{profile}: {where}: missing — add {{value: N, source: "
                                   "'where the number comes from'}")
    if _number(raw) is not None:
        raise CapacityProfileError(f"{profile}: {where}: {raw} has no source — give it as "
                                   "{value: N, source: 'where the number comes from'}")
    if not isinstance(raw, Mapping):
        raise CapacityProfileError(f"{profile}: {where}: expected {{value: N, source: ...}}, "
                                   f"got {raw!r}")
    value = _number(raw.get("value"))
    if value is None:
        raise CapacityProfileError(f"{profile}: {where}.value: expected a number, got "
                                   f"{raw.get('value')!r}")
    source = str(raw.get("source") or "").strip()
    if not source:
        raise CapacityProfileError(f"{profile}: {where}.source: missing — cite where {value:g}"
                                   " comes from (a measurement file or a published figure)")
    unit = str(raw.get("unit") or unit)
    unmeasured = raw.get("unmeasured", "cited")
    if unmeasured not in UNMEASURED:
        raise CapacityProfileError(f"{profile}: {where}.unmeasured: {unmeasured!r} — use one "
                                   f"of {', '.join(UNMEASURED)}")
    if "measured" in raw:
        got, why = measurement(raw["measured"], where, profile)
        if got is not None:
            return Input(name=name, value=got.value, source=got.source, kind="measured",
                         unit=unit, file=got.file, measured_at=got.measured_at)
        label = source if source.lower().startswith("cited") else f"cited: {source}"
        if unmeasured == "refuse":
            if not pessimistic:
                raise CapacityProfileError(
                    f"{profile}: {where}: no measurement ({why}) — measure it with "
                    f"`{raw.get('measure_with') or 'freehold loadtest calibrate SPEC|URL'}`, "
                    f"or plan with the cited pessimistic {value:g}: `freehold capacity "
                    "--pessimistic`")
            return Input(name=name, value=value, source=f"PESSIMISTIC stand-in, no measurement "
                         f"[{why}]: {label}", kind="cited", unit=unit, pessimistic=True)
        return Input(name=name, value=value, source=f"{label} [{why}]", kind="cited", unit=unit)
    label = source if source.lower().startswith(("cited", "measured")) else f"cited: {source}"
    return Input(name=name, value=value, source=label, kind="cited", unit=unit)


def _check_range(inp: Input, profile: Path, where: str) -> None:
    if inp.name in FRACTIONS and not 0 < inp.value <= 1:
        raise CapacityProfileError(f"{profile}: {where}.value: {inp.value:g} is not in (0, 1] "
                                   "— give a share such as 0.5")
    if inp.name in WHOLE and (inp.value != int(inp.value) or inp.value < 0):
        raise CapacityProfileError(f"{profile}: {where}.value: {inp.value:g} is not a whole "
                                   "number — give a count")
    if inp.name not in WHOLE and inp.name not in ("account_growth_per_month",) \
            and inp.value <= 0:
        raise CapacityProfileError(f"{profile}: {where}.value: {inp.value:g} must be > 0")


def app_inputs(doc: Mapping[str, Any], profile: Path, *, required: bool = True,
               pessimistic: bool = False) -> dict[str, Input]:
    """app_rps_per_core and app_headroom (top level, shared with `freehold loadtest`)."""
    out: dict[str, Input] = {}
    for name, (unit, _) in TOP_FIELDS.items():
        if name not in doc and not (required or name == "app_rps_per_core"):
            continue
        inp = read_input(doc.get(name), name, name, profile, unit, pessimistic)
        _check_range(inp, profile, name)
        out[name] = inp
    return out


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def capacity_inputs(doc: Mapping[str, Any], profile: Path) -> dict[str, Input]:
    section = doc.get("capacity")
    if not isinstance(section, Mapping):
        raise CapacityProfileError(f"{profile}: capacity: missing — add the capacity inputs "
                                   f"(see {os.path.relpath(DEFAULT_PROFILE)})")
    known = set(CAPACITY_FIELDS) | {"server_classes", "role_class"}
    for key in section:
        if key in RETIRED:
            role = RETIRED[key]
            new = SIZED_BY[role]
            raise CapacityProfileError(
                f"{profile}: capacity.{key}: no longer an input — {role} is sized by "
                + _and([f"{n} ({CAPACITY_FIELDS[n][1]}, in {CAPACITY_FIELDS[n][0]})"
                        for n in new])
                + f": remove {_and([k for k, v in RETIRED.items() if v == role])} and add "
                f"{_and(list(new))}: {{value: N, source: '...'}}"
                + (" each" if len(new) > 1 else "")
                + f" (see {os.path.relpath(DEFAULT_PROFILE)})")
        if key not in known:
            raise CapacityProfileError(f"{profile}: capacity.{key}: unknown input — use one of "
                                       f"{', '.join(CAPACITY_FIELDS)}")
    out: dict[str, Input] = {}
    for name, (unit, _) in CAPACITY_FIELDS.items():
        inp = read_input(section.get(name), name, f"capacity.{name}", profile, unit)
        _check_range(inp, profile, f"capacity.{name}")
        out[name] = inp
    return out


def server_classes(doc: Mapping[str, Any], profile: Path
                   ) -> tuple[dict[str, ServerClass], dict[str, str]]:
    """The profile's server classes (`general` required) and role -> class name."""
    section = doc.get("capacity") if isinstance(doc.get("capacity"), Mapping) else {}
    raw = section.get("server_classes")
    if not isinstance(raw, Mapping) or "general" not in raw:
        raise CapacityProfileError(f"{profile}: capacity.server_classes.general: missing — "
                                   "add {cores: N, ram_gib: N, disk_gib: N}")
    classes: dict[str, ServerClass] = {}
    for name, c in raw.items():
        where = f"capacity.server_classes.{name}"
        if not isinstance(c, Mapping):
            raise CapacityProfileError(f"{profile}: {where}: expected {{cores, ram_gib, "
                                       "disk_gib}}")
        nums = {}
        for k in ("cores", "ram_gib", "disk_gib"):
            v = _number(c.get(k))
            if v is None or v <= 0:
                raise CapacityProfileError(f"{profile}: {where}.{k}: expected a number > 0, "
                                           f"got {c.get(k)!r}")
            nums[k] = v
        price, currency, psrc = None, "", ""
        p = c.get("price_per_month")
        if p is not None:
            pin = read_input(p, "price_per_month", f"{where}.price_per_month", profile)
            price, psrc = pin.value, pin.source
            currency = str(p.get("currency") or "") if isinstance(p, Mapping) else ""
        net = c.get("network_gbit")
        if net is not None and (_number(net) is None or net <= 0):
            raise CapacityProfileError(f"{profile}: {where}.network_gbit: expected a number > 0"
                                       f" (the uplink in Gbit/s), got {net!r}")
        classes[str(name)] = ServerClass(str(name), int(nums["cores"]), nums["ram_gib"],
                                         nums["disk_gib"], price, currency, psrc,
                                         _number(net) if net is not None else None)
    role_class = section.get("role_class") or {}
    if not isinstance(role_class, Mapping):
        raise CapacityProfileError(f"{profile}: capacity.role_class: expected role: class")
    for role, cls in role_class.items():
        if cls not in classes:
            raise CapacityProfileError(f"{profile}: capacity.role_class.{role}: unknown class "
                                       f"{cls!r} — use one of {', '.join(classes)}")
    return classes, {str(k): str(v) for k, v in role_class.items()}
