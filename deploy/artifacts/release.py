"""The app as a versioned release, built on the operator's machine and pushed to the servers.

A release is a wheel of the app alone (`freehold-app`: the `freehold.app` package, which the
servers run as `python -m freehold.app.serve`, `freehold.app.worker` and `freehold.app.db`) plus
the wheels of the app's runtime dependencies, pinned to the versions installed beside freehold
here (the versions the tests ran with). The operator's code (`deploy`, `roles`, `loadgen`) never
reaches an app server, and editing it cuts no new release: the load generator gets its own
artifact (deploy/loadtest/remote.py). Servers never reach PyPI: the roles upload the wheels and
install them into `/opt/freehold/releases/<release id>/venv` with `pip --no-index`.

The release id is `<version>-<hash>`: the hash covers the app's source files, the release's
pyproject, the pins and `$FREEHOLD_RELEASE_LABEL` (set it to cut a new release of unchanged code,
e.g. in drills). The same tree gives the same id, so a second deploy changes nothing. Built
releases are cached in `<assets>/releases/<id>/`, dependency wheels in `<assets>/wheels/app/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
LABEL_ENV = "FREEHOLD_RELEASE_LABEL"
RELEASE_PACKAGE = "app"           # all the servers run; what it imports comes from the pins
RELEASE_DIST = "freehold-app"
WHEEL_GLOB = "freehold_app-*.whl"
# the local dev stack, its command and the PostgreSQL tools' argv builder (the operator's
# migrations and the dev stack use it): none runs on a server
RELEASE_EXCLUDE = {"app/dev.py", "app/devstack.py", "app/pgclient.py"}
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
# what `python -m freehold.app.serve` and `freehold.app.worker` import (their own dependencies
# follow)
APP_REQUIREMENTS = ("fastapi", "starlette", "uvicorn[standard]", "asyncpg", "psycopg[binary]",
                    "redis", "hiredis", "orjson", "argon2-cffi", "python-multipart",
                    "itsdangerous", "prometheus-client", "yoyo-migrations", "httpx", "boto3",
                    "pydantic", "pydantic-settings", "Jinja2")


class ReleaseError(Exception):
    """A release that cannot be built: one line naming the cause and the fix."""


@dataclass(frozen=True)
class Release:
    id: str
    wheel: Path                  # the app's wheel (freehold_app-<version>-py3-none-any.whl)
    requirements: str            # requirements.txt text: exact pins, one a line
    dep_wheels: tuple[Path, ...]
    deps_archive: Path           # the dependency wheels in one tar (one upload, one check)

    @property
    def deps_id(self) -> str:
        return self.deps_archive.name.removesuffix(".tar")

    def to_doc(self) -> dict[str, object]:
        return {"id": self.id, "wheel": self.wheel.name, "deps": len(self.dep_wheels),
                "deps_archive": self.deps_archive.name}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# the servers' Python (Debian 12's python3): dependency markers are evaluated for it
SERVER_PYTHON = "3.11.2"


def runtime_pins(roots: tuple[str, ...] = APP_REQUIREMENTS) -> dict[str, str]:
    """{distribution: version} of the app's runtime closure for the servers' Python: the
    versions installed here, or for a dependency only the servers need (a marker for their
    older Python), the lowest version the requirement allows ("name>=x" -> "x")."""
    env = {"python_version": SERVER_PYTHON.rsplit(".", 1)[0],
           "python_full_version": SERVER_PYTHON, "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64",
           "implementation_name": "cpython", "platform_python_implementation": "CPython",
           "os_name": "posix"}
    pins: dict[str, str] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            lowest = [sp.version for sp in req.specifier if sp.operator in (">=", "==", "~=")]
            if not lowest:
                raise ReleaseError(f"{req.name} is needed on the servers but not installed "
                                   "here and has no lower bound to pin — add it to "
                                   "pyproject.toml") from None
            pins.setdefault(name, min(lowest))
            continue
        new = name not in pins
        pins[name] = dist.version
        extras = set(req.extras)
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is not None:
                ok = any(sub.marker.evaluate({**env, "extra": e}) for e in extras) or \
                    sub.marker.evaluate({**env, "extra": ""})
                if not ok:
                    continue
            if new or sub.extras:
                todo.append(sub)
    return dict(sorted(pins.items()))


def _source_files(root: Path) -> list[Path]:
    """The app's files that go into the release (sorted; caches and the dev command left out)."""
    files = []
    for path in sorted((root / RELEASE_PACKAGE).rglob("*")):
        if path.is_file() and not SKIP_DIRS.intersection(path.parts) \
                and path.suffix not in (".pyc", ".pyo") \
                and path.relative_to(root).as_posix() not in RELEASE_EXCLUDE:
            files.append(path)
    return files


def _version() -> str:
    return metadata.version("freehold") if _installed("freehold") else "0"


def release_pyproject(root: Path = REPO, version: str | None = None) -> str:
    """The pyproject.toml of the app's own wheel: the `freehold.app` package (the `app` folder
    under the `freehold` namespace, as the operator's install maps it) with the package data the
    project's pyproject declares (one list of data patterns), no dependencies (the pins are
    installed from the release's requirements)."""
    project = root / "pyproject.toml"
    data = tomllib.loads(project.read_text())["tool"]["setuptools"]["package-data"] \
        if project.exists() else {"*": ["*.sql", "*.html", "*.css", "*.js", "*.json"]}
    patterns = ", ".join(json.dumps(p) for p in data.get("*", []))
    return (
        '[build-system]\nrequires = ["setuptools>=68"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{RELEASE_DIST}"\nversion = "{version or _version()}"\n'
        'requires-python = ">=3.11"\n\n'
        f'[tool.setuptools.packages.find]\ninclude = ["freehold.{RELEASE_PACKAGE}*"]\n\n'
        f'[tool.setuptools.package-data]\n"*" = [{patterns}]\n')


def release_id(root: Path = REPO, pins: dict[str, str] | None = None) -> str:
    pins = runtime_pins() if pins is None else pins
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(release_pyproject(root).encode() + b"\0")
    digest.update(json.dumps(pins, sort_keys=True).encode())
    digest.update(os.environ.get(LABEL_ENV, "").encode())
    return f"{_version()}-{digest.hexdigest()[:12]}"


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _pip(args: list[str], what: str, timeout: float = 900) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise ReleaseError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-400:]} — "
                           "check the network to PyPI (or fill the wheel cache by hand)")


def _wheel_for(folder: Path, name: str, version: str) -> Path | None:
    want = (_norm(name).replace("-", "_"), version)
    for path in folder.glob("*.whl"):
        parts = path.name.split("-")
        if len(parts) >= 2 and (_norm(parts[0]).replace("-", "_"), parts[1]) == want:
            return path
    return None


def dependency_wheels(cache: Path, pins: dict[str, str]) -> list[Path]:
    """Wheels of every pin (cp311 manylinux, like the servers' Debian 12 Python), cached."""
    folder = Path(cache) / "wheels" / "app"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [f"{n}=={v}" for n, v in pins.items() if _wheel_for(folder, n, v) is None]
    if missing:
        _pip(["wheel", "--quiet", "--no-deps", "--prefer-binary", "-w", str(folder), *missing],
             f"fetching wheels of {', '.join(missing[:4])}…")
    out = []
    for n, v in pins.items():
        path = _wheel_for(folder, n, v)
        if path is None:
            raise ReleaseError(f"no wheel of {n}=={v} in {folder} — put one there by hand")
        out.append(path)
    return out


def deps_archive(cache: Path, wheels: list[Path]) -> Path:
    """`deps-<hash>.tar`: the wheels in one uncompressed tar (wheels are zips already), with
    fixed metadata so the same wheels always give the same bytes."""
    digest = hashlib.sha256()
    for w in sorted(wheels, key=lambda p: p.name):
        digest.update(w.name.encode() + b"\0" + str(w.stat().st_size).encode() + b"\0")
    path = Path(cache) / "wheels" / f"deps-{digest.hexdigest()[:12]}.tar"
    if path.exists():
        return path
    import tarfile

    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for w in sorted(wheels, key=lambda p: p.name):
            info = tar.gettarinfo(str(w), arcname=w.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o644
            with w.open("rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, path)
    return path


def app_wheel(root: Path, folder: Path) -> Path:
    """The app's wheel in `folder` (built there from `root` when missing)."""
    found = sorted(folder.glob(WHEEL_GLOB))
    if not found:
        with tempfile.TemporaryDirectory(prefix="freehold-release-") as tmp:
            src = Path(tmp) / "src"
            for path in _source_files(root):
                dest = src / "freehold" / path.relative_to(root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            (src / "pyproject.toml").write_text(release_pyproject(root))
            out = Path(tmp) / "out"
            _pip(["wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
                 "building the app's wheel")
            folder.mkdir(parents=True, exist_ok=True)
            for whl in out.glob(WHEEL_GLOB):
                shutil.copy2(whl, folder / whl.name)
        found = sorted(folder.glob(WHEEL_GLOB))
        if not found:
            raise ReleaseError(f"building the app's wheel left nothing in {folder}")
    return found[-1]


def build_release(cache: Path, root: Path = REPO) -> Release:
    """The release of the working tree at `root` (built once, then taken from the cache)."""
    pins = runtime_pins()
    rid = release_id(root, pins)
    deps = dependency_wheels(cache, pins)
    folder = Path(cache) / "releases" / rid
    requirements = "".join(f"{n}=={v}\n" for n, v in pins.items())
    wheel = app_wheel(root, folder)
    return Release(id=rid, wheel=wheel, requirements=requirements, dep_wheels=tuple(deps),
                   deps_archive=deps_archive(cache, deps))


_built: dict[tuple[str, str], Release] = {}


def current_release(cache: Path) -> Release:
    """`build_release` once per process (every host of a deploy gets the same release). The
    files to upload are copied to a folder of this process (removed at exit), so a cache
    cleaned meanwhile cannot pull them away between the plan and the upload."""
    key = (str(cache), os.environ.get(LABEL_ENV, ""))
    if key not in _built:
        import atexit

        built = build_release(cache)
        own = Path(tempfile.mkdtemp(prefix="freehold-release-"))
        atexit.register(shutil.rmtree, own, True)
        wheel, archive = own / built.wheel.name, own / built.deps_archive.name
        shutil.copy2(built.wheel, wheel)
        shutil.copy2(built.deps_archive, archive)
        _built[key] = Release(id=built.id, wheel=wheel, requirements=built.requirements,
                              dep_wheels=built.dep_wheels, deps_archive=archive)
    return _built[key]
