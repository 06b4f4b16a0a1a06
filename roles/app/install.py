"""Operations that put a release of the app on a server (shared by roles/app and roles/worker).

Wheels of the dependencies go to /opt/freehold/wheels as one tar (`deps-<hash>.tar`, shared by
the releases that pin the same versions, unpacked beside it), the freehold
wheel and the pinned requirements to /opt/freehold/releases/<id>/, which gets its own venv
(`pip --no-index --no-deps`, nothing fetched from the internet). `.installed` marks a complete
install; `freehold-release` switches the `current` link and prunes old releases.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File, Link
from pyinfra.operations import files, server

from freehold.deploy.artifacts.release import Release, current_release
from freehold.roles.app.config import (
    ENV_FILE,
    HELPER,
    HOME,
    RELEASES,
    ROOT,
    USER,
    WHEELS,
    app_env,
    env_file,
    running_release,
)
from freehold.roles.common import config_file, ensure_packages, system_user, template_path
from freehold.roles.common.facts import UnitCommandLine


def release_for(ctx: Any) -> Release:
    return current_release(ctx.assets_dir)


def is_installed(release: Release) -> bool:
    return bool(host.get_fact(File, f"{RELEASES}/{release.id}/.installed"))


def install_script(release: Release) -> str:
    """Make the release's venv: copied from an installed release with the same dependency
    wheels (then only the app's wheel is reinstalled, after removing the app distributions the
    copy carries: releases before the app had its own wheel installed all of freehold), else
    built from the wheels. Always `python -m pip` (a copied venv's scripts still name the venv
    they came from)."""
    folder = f"{RELEASES}/{release.id}"
    deps = f"{WHEELS}/{release.deps_id}"
    pip = ("venv/bin/python -m pip install --quiet --no-index --no-deps "
           "--disable-pip-version-check")
    return (
        f"set -e; mkdir -p {deps} && tar -xf {WHEELS}/{release.deps_archive.name} -C {deps}; "
        f"cd {folder}; rm -rf venv; src=''; "
        f"for d in {RELEASES}/*; do if [ -f $d/.installed ] && "
        f"[ \"$(cat $d/.deps 2>/dev/null)\" = {release.deps_id} ]; then src=$d; fi; done; "
        f"if [ -n \"$src\" ]; then cp -a $src/venv venv && "
        "venv/bin/python -m pip uninstall --quiet --yes --disable-pip-version-check "
        "freehold freehold-app && "
        f"{pip} --force-reinstall ./{release.wheel.name}; "
        f"else python3 -m venv venv && {pip} --find-links {deps} -r requirements.txt "
        f"./{release.wheel.name}; fi; "
        f"echo {release.deps_id} > .deps; "
        "venv/bin/python -c 'import freehold.app.main, freehold.app.worker'; touch .installed")


def install_release(ctx: Any, role: str) -> tuple[Release, bool]:
    """Upload and install the release (when missing). Returns (release, newly installed)."""
    release = release_for(ctx)
    ensure_packages(["python3-venv"], role)
    system_user(USER, HOME)
    for path in (ROOT, RELEASES, WHEELS, "/etc/freehold"):
        files.directory(name=f"Directory {path}", path=path, mode="755")
    files.put(name="Upload freehold-release", src=str(template_path(__file__,
                                                                    "freehold-release.py")),
              dest=HELPER, mode="755")
    if is_installed(release):
        return release, False
    archive = f"{WHEELS}/{release.deps_archive.name}"
    files.put(name=f"Upload {release.deps_archive.name}", src=str(release.deps_archive),
              dest=archive, mode="644")
    folder = f"{RELEASES}/{release.id}"
    files.directory(name=f"Release {release.id}", path=folder, mode="755")
    files.put(name=f"Upload {release.wheel.name}", src=str(release.wheel),
              dest=f"{folder}/{release.wheel.name}", mode="644")
    files.put(name="Upload requirements.txt", src=StringIO(release.requirements),
              dest=f"{folder}/requirements.txt", mode="644")
    server.shell(name=f"Install release {release.id}", commands=[install_script(release)],
                 _timeout=900)
    return release, True


def environment(ctx: Any, me: Any) -> OperationMeta:
    """/etc/freehold/app.env: 0600, owned by the service user."""
    return config_file(ENV_FILE, env_file(app_env(ctx.spec, ctx.secrets, me)), mode="600",
                       user=USER, group=USER)


def current_link() -> str | None:
    link = host.get_fact(Link, path=f"{ROOT}/current")
    if not link:  # no link (None), or a file that is not one (False)
        return None
    return str(link["link_target"]).rstrip("/").rsplit("/", 1)[-1] or None


def unit_release(unit: str) -> str | None:
    """The release the unit's main process runs now (None when it does not run)."""
    return running_release(host.get_fact(UnitCommandLine, unit=unit))
