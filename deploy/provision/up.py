"""`freehold up`: the whole platform on the local lab in one command.

Steps: boot the lab's servers (`Lab.up`, idempotent), deploy every role of the spec (the same
driver as `freehold deploy`), check the database migrations on an app server, seed the demo
network there (`python -m freehold.app.demo`, app.demo.builder: idempotent, only its own
accounts), and smoke-check every site's virtual IP over
HTTPS (/readyz, log in as the demo admin, read the home feed). A second run changes nothing.

Secrets: the spec's encrypted secrets file (default: beside the spec) and its key from
$FREEHOLD_SECRETS_KEY or `~/.config/freehold/<spec name>.key` — never in the repository.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.app.demo.content import ADMIN, PASSWORD
from freehold.deploy.spec import ClusterSpec

Progress = Callable[[str, int, int], None]
ADMIN_USER = ADMIN         # the demo network's admin (app.demo.content): lab data only
ADMIN_PASSWORD = PASSWORD


class UpError(Exception):
    """A step of `freehold up` that failed: one line naming the step and what to do."""


@dataclass
class UpReport:
    spec: str
    urls: list[str] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    changed: int = 0
    deploy: dict[str, Any] = field(default_factory=dict)
    seeded: int = 0
    smoke: dict[str, Any] = field(default_factory=dict)
    ca_file: str = ""
    seconds: float = 0.0

    def to_doc(self) -> dict[str, Any]:
        return {"spec": self.spec, "ok": True, "urls": self.urls, "changed": self.changed,
                "seeded_accounts": self.seeded, "admin": {"username": ADMIN_USER,
                                                          "password": ADMIN_PASSWORD},
                "ca_file": self.ca_file, "smoke": self.smoke,
                "seconds": round(self.seconds, 1),
                "steps": {k: round(v, 1) for k, v in self.steps.items()},
                "deploy": self.deploy}


def seed_command() -> str:
    """Builds the demo network (`python -m freehold.app.demo`, idempotent) with the app's own
    settings, as the app's user; it prints one JSON line of what it made now."""
    return ("set -a && . /etc/freehold/app.env && set +a && "
            "cd /var/lib/freehold && runuser -u freehold -- /opt/freehold/current/venv/bin/python "
            "-m freehold.app.demo")


def _run(lab: Any, host: str, cmd: str, timeout: float) -> Any:
    import subprocess

    try:
        return lab.run(host, cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UpError(f"{host}: `{cmd[:80]}` did not finish within {timeout:.0f} s — see "
                      f"`freehold lab ssh {host} journalctl -n 50`") from None


def migrate_and_seed(spec: ClusterSpec, lab: Any) -> tuple[str, int]:
    """(migration output, accounts seeded now — 0 when the demo data was there), on the first
    app server that answers. Over the lab's own `ssh` (a subprocess): Fabric's threads hang in
    this gevent-patched process once pyinfra has run."""
    from freehold.roles.app.config import MIGRATE_UNIT

    errors = []
    for server in spec.servers_with_role("app"):
        try:
            rel = lab.run(server.name, "readlink /opt/freehold/current",
                          timeout=30).stdout.strip().rsplit("/", 1)[-1]
        except Exception as e:  # noqa: BLE001 - next app server
            errors.append(f"{server.name}: {type(e).__name__}: {e}")
            continue
        if not rel:
            errors.append(f"{server.name}: no current release (/opt/freehold/current)")
            continue
        mig = _run(lab, server.name, f"systemctl start {MIGRATE_UNIT}@{rel}.service && journalctl "
                                   f"-u {MIGRATE_UNIT}@{rel}.service -n 1 -o cat --no-pager",
                      timeout=600)
        if mig.returncode != 0:
            raise UpError(f"migrations on {server.name} failed: "
                          f"{(mig.stderr or mig.stdout).strip()[-300:]} — see `freehold lab ssh "
                          f"{server.name} journalctl -u {MIGRATE_UNIT}@{rel}`")
        out = _run(lab, server.name, seed_command(), timeout=600)
        if out.returncode != 0:
            raise UpError(f"seeding demo data on {server.name} failed: "
                          f"{(out.stderr or out.stdout).strip()[-300:]}")
        doc = json.loads(out.stdout.strip().splitlines()[-1])
        return mig.stdout.strip(), int(doc.get("accounts", 0))
    raise UpError("no app server reachable to migrate and seed: " + "; ".join(errors))


def _request(url: str, ctx: ssl.SSLContext, body: dict[str, Any] | None = None,
             token: str | None = None, timeout: float = 5) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else \
        ssl.create_default_context()
    return ctx


def smoke(vip: str, ca_file: str | None, timeout: float = 90) -> dict[str, Any]:
    """Through the virtual IP over HTTPS (certificate checked): /readyz, log in as the demo
    admin, read the home feed. Bounded wait for the health checks to bring servers in."""
    ctx = tls_context(ca_file)
    base = f"https://{vip}"
    started = time.monotonic()
    deadline = started + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            code, _ = _request(f"{base}/readyz", ctx)
            if code == 200:
                break
            last = f"/readyz answered {code}"
        except (urllib.error.URLError, OSError) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(1)
    else:
        raise UpError(f"{base}/readyz not ready within {timeout:.0f} s ({last}) — see "
                      "`freehold lab ssh <lb> journalctl -u haproxy`")
    code, doc = _request(f"{base}/api/v1/auth/login", ctx,
                         {"login": ADMIN_USER, "password": ADMIN_PASSWORD})
    if code != 200 or not doc:
        raise UpError(f"{base}: logging in as {ADMIN_USER} answered {code}")
    code, feed = _request(f"{base}/api/v1/timelines/home", ctx, token=doc["token"])
    if code != 200:
        raise UpError(f"{base}/api/v1/timelines/home answered {code}")
    return {"vip": vip, "ready_s": round(time.monotonic() - started, 1),
            "feed_items": len((feed or {}).get("items", feed or []))
            if isinstance(feed, dict | list) else 0}


def ca_file_for(spec: ClusterSpec) -> str | None:
    """The self-signed certificate (it is its own CA) when the kit made it, else None."""
    from freehold.roles.lb.config import settings
    from freehold.roles.lb.tls import self_signed_path

    if settings(spec).get("tls_cert"):
        return None
    path = self_signed_path(spec)
    if not path.exists():
        return None
    ca = path.with_name(f"{spec.name}.ca.pem")
    text = path.read_text()
    cert = text[:text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    if not ca.exists() or ca.read_text() != cert + "\n":
        ca.write_text(cert + "\n")
    return str(ca)


def run_up(spec_path: Path, spec: ClusterSpec, lab: Any, secrets_path: Path | None,
           progress: Progress, deploy_progress: Progress) -> UpReport:
    from freehold.deploy.provision.driver import HostKeysRefused, run_deploy
    from freehold.roles.lb.config import vips

    started = time.monotonic()
    report = UpReport(spec=spec.name)

    t0 = time.monotonic()
    lab.up(progress=progress)
    report.steps["lab"] = time.monotonic() - t0

    t0 = time.monotonic()
    try:
        dep = run_deploy(spec, spec_path, dry_run=False, secrets_path=secrets_path,
                         progress=deploy_progress)
    except HostKeysRefused as e:
        raise UpError("; ".join(e.problems)) from None
    report.steps["deploy"] = time.monotonic() - t0
    report.changed = dep.changed
    report.deploy = {"changed": dep.changed, "failed_hosts": dep.failed_hosts,
                     "stopped": dep.stopped, "seconds": round(dep.seconds, 1),
                     "changes": [{"host": r.host, "role": r.role, "changes": r.changes}
                                 for r in dep.results if r.changed]}
    if not dep.ok:
        bad = [f"{r.host}/{r.role}: {r.error}" for r in dep.results
               if r.status in ("failed", "unreachable")]
        raise UpError(f"deploy failed ({dep.stopped or '; '.join(bad)[:600]}) — fix it and "
                      f"run `freehold up` again (re-run hosts: {', '.join(dep.rerun_hosts())})")

    t0 = time.monotonic()
    progress("migrations and demo data", 0, 1)
    _, report.seeded = migrate_and_seed(spec, lab)
    progress("migrations and demo data", 1, 1)
    report.steps["migrate_seed"] = time.monotonic() - t0

    t0 = time.monotonic()
    report.ca_file = ca_file_for(spec) or ""
    sites = vips(spec)
    for i, (site, vip) in enumerate(sorted(sites.items())):
        progress(f"smoke check through {vip} (site {site})", i, len(sites))
        report.smoke[site] = smoke(vip, report.ca_file or None)
        report.urls.append(f"https://{vip}/")
    report.steps["smoke"] = time.monotonic() - t0
    report.seconds = time.monotonic() - started
    return report
