"""Pure config for SeaweedFS: masters (raft, odd count), a volume server on every media server
(data center = site, so replication "100" keeps each volume's copy in another site), a filer
with the S3 gateway on every media server, S3 credentials from the secrets."""

from __future__ import annotations

import json
import shlex
from typing import Any

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec, Server
from freehold.deploy.spec.placement import media_copies, media_masters
from freehold.roles.ports import MEDIA_FILER_PORT as FILER_PORT
from freehold.roles.ports import MEDIA_MASTER_PORT as MASTER_PORT
from freehold.roles.ports import MEDIA_S3_PORT as S3_PORT
from freehold.roles.ports import MEDIA_VOLUME_PORT as VOLUME_PORT

HOME = "/var/lib/seaweedfs"
VENV = "/opt/seaweedfs/venv"
WEED = f"{VENV}/bin/weed"
S3_CONFIG = "/etc/seaweedfs/s3.json"


def replication(spec: ClusterSpec) -> str:
    """SeaweedFS placement `xyz`: x extra copies in other data centers (= sites)."""
    sites = {s.site for s in spec.servers_with_role("media")}
    extra = max(0, min(media_copies(spec), len(sites)) - 1)
    return f"{extra}00"


def bucket(spec: ClusterSpec) -> str:
    return str(spec.role_settings("media").get("bucket", "media"))


FILER_WAIT_S = 240


def filer_url(spec: ClusterSpec) -> str:
    """The first master's filer (it creates the bucket)."""
    return f"http://{media_masters(spec)[0].mesh_address}:{FILER_PORT}/"


def bucket_url(spec: ClusterSpec) -> str:
    """The media bucket's folder on the filer (200: it exists). The bucket name is checked by
    the spec; the URL is quoted where it reaches a shell (roles.media.facts)."""
    return f"{filer_url(spec)}buckets/{bucket(spec)}/"


def wait_filer_command(spec: ClusterSpec, timeout_s: int = FILER_WAIT_S) -> str:
    """Waits (bounded) until the filer answers; exits 1 naming the unit when it does not."""
    return (f"for i in $(seq 1 {timeout_s}); do curl -fs --max-time 3 -o /dev/null "
            f"{shlex.quote(filer_url(spec))} && exit 0; sleep 1; done; echo 'the SeaweedFS filer "
            f"does not answer after {timeout_s} s — see journalctl -u freehold-weed-filer' >&2; "
            "exit 1")


def bucket_create_command(spec: ClusterSpec) -> str:
    """Creates the media bucket through `weed shell` as the seaweedfs user."""
    line = f"s3.bucket.create -name {bucket(spec)}"
    return (f"printf '%s\\n' {shlex.quote(line)} | runuser -u seaweedfs -- {WEED} shell "
            f"{shlex.quote('-master=' + master_list(spec))}")


def volume_size_mb(spec: ClusterSpec) -> int:
    return int(spec.role_settings("media").get("volume_size_limit_mb", 1024))


def master_list(spec: ClusterSpec) -> str:
    return ",".join(f"{m.mesh_address}:{MASTER_PORT}" for m in media_masters(spec))


def commands(spec: ClusterSpec, me: Server) -> dict[str, str]:
    """The ExecStart line of each SeaweedFS service this server runs."""
    ip = me.mesh_address
    masters = master_list(spec)
    slots = max(8, int(me.disk_gib * 1024 // volume_size_mb(spec)))
    out = {
        "volume": (f"{WEED} volume -ip={ip} -ip.bind={ip} -port={VOLUME_PORT} "
                   f"-dir={HOME}/volume -max={slots} -master={masters} "
                   f"-dataCenter={me.site} -rack={me.name} -minFreeSpace=5"),
        "filer": (f"{WEED} filer -ip={ip} -ip.bind={ip} -port={FILER_PORT} -master={masters} "
                  f"-dataCenter={me.site} -rack={me.name} "
                  f"-defaultReplicaPlacement={replication(spec)} -defaultStoreDir={HOME}/filer "
                  f"-s3 -s3.port={S3_PORT} -s3.config={S3_CONFIG}"),
    }
    if me.name in {m.name for m in media_masters(spec)}:
        out["master"] = (f"{WEED} master -ip={ip} -ip.bind={ip} -port={MASTER_PORT} "
                         f"-mdir={HOME}/master -peers={masters} "
                         f"-defaultReplication={replication(spec)} "
                         f"-volumeSizeLimitMB={volume_size_mb(spec)}")
    return out


def s3_config(secrets: Secrets) -> str:
    ident = {"name": "freehold",
             "credentials": [{"accessKey": secrets["s3_access_key"],
                              "secretKey": secrets["s3_secret_key"]}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
    return json.dumps({"identities": [ident]}, indent=2) + "\n"


def unit_vars(kind: str, command: str, me: Server) -> dict[str, Any]:
    after = {"master": "", "volume": "freehold-weed-master.service",
             "filer": "freehold-weed-volume.service"}[kind]
    return {"kind": kind, "command": command, "server": me, "home": HOME, "after": after}
