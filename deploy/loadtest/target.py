"""From `SPEC|URL` and the capacity profile to a load-test plan with an explicit scale factor.

The target: a cluster spec (its app servers, load balancers and loadgen servers) or the URL of a
running app (with `--app-cores`). The scale factor between production and the target:

    factor = target app cores / production app cores planned for `to_accounts` (10 M)

where the production figure comes from the capacity model (`deploy.capacity.app_cores_for`: peak
requests/s / (app_rps_per_core x app_headroom), the per-core figure measured by `freehold
loadtest calibrate` when the profile names that file and it exists). A surge step
standing for A production accounts then sends peak_rps(A) x factor requests/s: at the 10 M step
the target's app cores carry exactly the load per core the capacity plan assumes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from freehold.loadgen import shapes
from freehold.loadgen.shapes import LoadPlan, Scale
from freehold.loadgen.traffic import ProfileError, TrafficModel, figure_of, find_key

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "loadgen" / "runs"


class TargetError(ValueError):
    """A target that cannot be used; the message names it and the fix."""


@dataclass
class Target:
    label: str  # spec name or host:port
    url: str  # where the users send requests
    app_cores: float
    spec_path: Path | None = None
    app_urls: list[str] = field(default_factory=list)  # each app server, for calibration
    app_server_cores: list[int] = field(default_factory=list)
    loadgen: list[Any] = field(default_factory=list)  # deploy.spec Server objects
    spec: Any = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.label).strip("-") or "target"

    @property
    def default_roster(self) -> Path:
        """Beside the operator's secrets keys, never in the repository: the roster holds the
        load-test accounts' password and session tokens."""
        from freehold.deploy.secrets import default_key_path

        return default_key_path(self.slug).parent / "loadtest" / f"roster-{self.slug}.json"

    def ssh_settings(self) -> Any:
        """How to reach the spec's servers (deploy.ssh.SSHSettings; defaults for a URL)."""
        from freehold.deploy.ssh import SSHSettings, settings_for

        if self.spec_path is not None and self.spec is not None:
            return settings_for(self.spec_path, self.spec)
        return SSHSettings()

    @property
    def is_lab(self) -> bool:
        """A spec of the local lab: it has a `lab:` section (the spec loader then keeps every
        site, so every server, inside the lab's network)."""
        return self.spec is not None and self.spec.lab is not None


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def resolve_target(text: str, *, url: str | None = None, app_cores: float | None = None
                   ) -> Target:
    """A Target from `SPEC|URL`; TargetError (one line) when it cannot be used."""
    if is_url(text):
        parts = urlsplit(text)
        if not parts.hostname:
            raise TargetError(f"{text}: not a URL — give http://HOST:PORT")
        cores = 1.0 if app_cores is None else float(app_cores)
        if cores <= 0:
            raise TargetError("--app-cores: must be > 0 (the cores serving the app at the URL)")
        label = f"{parts.hostname}-{parts.port or ('443' if parts.scheme == 'https' else '80')}"
        base = text.rstrip("/")
        return Target(label=label, url=url or base, app_cores=cores, app_urls=[url or base],
                      app_server_cores=[math.ceil(cores)])
    path = Path(text)
    if not path.exists():
        raise TargetError(f"{text}: no such spec file and not a URL — give a cluster spec "
                          "(inventories/lab.yaml) or http://HOST:PORT")
    from freehold.deploy.spec import SpecError, load_spec
    from freehold.roles.app.config import app_port

    try:
        spec = load_spec(path)
    except SpecError as exc:
        first = exc.problems[0] if getattr(exc, "problems", None) else str(exc)
        raise TargetError(first) from exc
    apps = spec.servers_with_role("app")
    if not apps:
        raise TargetError(f"{path}: servers: no server has the role app — nothing to load")
    lbs = spec.servers_with_role("lb")
    port = app_port(spec)
    entry = url or (f"https://{lbs[0].public_address}" if lbs
                    else f"http://{apps[0].public_address}:{port}")
    cores = float(app_cores) if app_cores else float(sum(s.cores for s in apps))
    loadgen = spec.servers_with_role("loadgen")
    # an app server listens on its mesh address only (roles/app): the spec's load generators,
    # mesh members, reach it there; from outside the mesh no address of it answers
    return Target(label=spec.name, url=entry.rstrip("/"), app_cores=cores, spec_path=path,
                  app_urls=[f"http://{s.mesh_address if loadgen else s.public_address}:{port}"
                            for s in apps],
                  app_server_cores=[s.cores for s in apps],
                  loadgen=loadgen, spec=spec)


# ---- the scale factor -------------------------------------------------------------------
def scale_for(target: Target, model: TrafficModel, to_accounts: int) -> Scale:
    """Target app cores / the production app cores the capacity model plans for
    `to_accounts` (deploy.capacity.app_cores_for: the profile's app_rps_per_core, or the
    calibration file it names when present, at app_headroom utilisation)."""
    from freehold.deploy.capacity import app_cores_for

    cores, source = app_cores_for(to_accounts, profile=model.profile)
    if cores <= 0:
        raise ProfileError(f"{model.profile}: the capacity model plans {cores} app cores")
    return Scale(factor=target.app_cores / cores, target_app_cores=target.app_cores,
                 production_app_cores=cores, production_accounts=to_accounts, source=source)


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1h30m' -> seconds; ValueError otherwise."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise ValueError(f"{text!r}: give a duration like 90s, 5m or 1h")
    mult = {"h": 3600, "m": 60, "s": 1}
    return sum(float(a) * mult[b] for a, b in parts)


def build_plan(shape: str, target: Target, model: TrafficModel, duration_s: float, *,
               from_accounts: int = 4 * shapes.M, to_accounts: int = 10 * shapes.M,
               steps: int = 7, max_users: int = 1000, flood_day_share: float = 0.5) -> LoadPlan:
    scale = scale_for(target, model, to_accounts)
    if shape == "surge":
        return shapes.surge(model, scale, target.url, duration_s, from_accounts=from_accounts,
                            to_accounts=to_accounts, steps=steps, max_users=max_users)
    if shape == "spike":
        return shapes.spike(model, scale, target.url, duration_s, from_accounts=from_accounts,
                            to_accounts=to_accounts, flood_day_share=flood_day_share,
                            max_users=max_users)
    if shape == "soak":
        return shapes.soak(model, scale, target.url, duration_s, accounts=to_accounts,
                           windows=max(2, min(steps, 12)), max_users=max_users)
    raise TargetError(f"--shape {shape}: unknown — use one of {', '.join(shapes.SHAPES)}")


def parse_accounts(text: str) -> int:
    """'4M', '10m', '250k', '1500' -> int; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise ValueError(f"{text!r}: give a number like 10000, 250k or 10M")
    mult = {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def profile_number(profile: Path, keys: tuple[str, ...]) -> tuple[float, str] | None:
    doc = yaml.safe_load(profile.read_text()) or {}
    found = find_key(doc, keys)
    if found is None:
        return None
    f = figure_of(found[1], f"{profile}: {found[0]}")
    return f.value, f.source


def as_mapping(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}
