"""Resolve `--to SPEC|URL` into where a copy goes: the new cluster's media store or database.

A URL is used as given. A cluster spec resolves to a service on one of its servers:

- objects: the S3 gateway of the spec's first `media` server (the SeaweedFS filer runs
  `-s3` on every media server, bound to its mesh address, port 8333), bucket
  `roles.media.bucket` (default `media`), the S3 identity from the spec's encrypted secrets;
- database: the Patroni primary as routed by the first `pgbouncer` server (its HAProxy primary
  port, 127.0.0.1:5000 there: the same route pgbouncer pools over), database `freehold`, as the
  `postgres` superuser from the secrets. Not pgbouncer's own port 6432: CREATE SUBSCRIPTION
  needs a superuser and a session, which pgbouncer's transaction pool (app user only) cannot
  give; pg_restore also needs a session.

Both listen only on the cluster's mesh or loopback, so the operator's machine reaches them through
an SSH tunnel (Fabric `forward_local`) to that server, its host key checked against the spec's
known_hosts (deploy.ssh). Every problem is a `MigrateError` with one line naming the field and
the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.s3client import S3Location, parse_location

MEDIA_BUCKET = "media"
SUPERUSER = "postgres"  # roles/postgres: Patroni's superuser
DATABASE = "freehold"  # roles/postgres: APP_DATABASE


@dataclass
class Route:
    """A service on a cluster server, reached through an SSH tunnel to `server`."""

    spec_path: Path
    spec: Any  # deploy.spec.ClusterSpec
    server: Any  # deploy.spec.Server: where the tunnel goes
    remote_host: str  # as seen from that server
    remote_port: int
    what: str

    def describe(self) -> str:
        return (f"{self.what} {self.remote_host}:{self.remote_port} via ssh "
                f"{self.server.ssh_user}@{self.server.public_address} ({self.server.name})")


@dataclass
class MediaRoute(Route):
    bucket: str = MEDIA_BUCKET
    access_key: str = ""
    secret_key: str = ""


@dataclass
class DatabaseRoute(Route):
    user: str = SUPERUSER
    password: str = ""
    database: str = DATABASE


def load_spec(path: Path) -> Any:
    if not path.exists():
        raise MigrateError(f"--to {path}: no such spec file — give a cluster spec or a URL")
    try:
        from freehold.deploy.spec import SpecError
        from freehold.deploy.spec import load_spec as load
    except ImportError:
        raise MigrateError(f"--to {path}: cluster specs are not readable here (deploy.spec "
                           "missing) — pass a URL instead") from None
    try:
        return load(path)
    except SpecError as e:
        raise MigrateError(f"--to {path}: {e.problems[0] if e.problems else e}") from None


def cluster_secrets(spec_path: Path, spec: Any, secrets: Path | None = None) -> Any:
    """The spec's decrypted secrets (written by `freehold deploy` beside the spec)."""
    from freehold.deploy.secrets import SecretsError, SecretStore, secrets_path_for

    store = SecretStore(secrets or secrets_path_for(spec_path), spec.name)
    if not store.path.exists():
        raise MigrateError(f"--to {spec_path}: no secrets at {store.path} — deploy the cluster "
                           "first (freehold deploy), pass --secrets FILE, or give a URL")
    try:
        return store.load()
    except SecretsError as e:
        raise MigrateError(str(e)) from None


def _first_with(spec_path: Path, spec: Any, role: str) -> Any:
    servers = spec.servers_with_role(role)
    if not servers:
        raise MigrateError(f"--to {spec_path}: no server has the {role} role — add {role} to "
                           "a server's roles in the spec, or give a URL")
    return servers[0]


def media_route(spec_path: Path, secrets: Path | None = None) -> MediaRoute:
    """The S3 gateway of the spec's first media server, with the cluster's S3 identity."""
    spec = load_spec(spec_path)
    server = _first_with(spec_path, spec, "media")
    sec = cluster_secrets(spec_path, spec, secrets)
    try:
        access, secret = sec["s3_access_key"], sec["s3_secret_key"]
    except KeyError:
        raise MigrateError(f"--to {spec_path}: the secrets hold no S3 identity — deploy the "
                           "media role first (freehold deploy --roles media)") from None
    from freehold.roles.media.config import S3_PORT, bucket

    return MediaRoute(spec_path=spec_path, spec=spec, server=server,
                      remote_host=server.mesh_address, remote_port=S3_PORT,
                      what="SeaweedFS S3 gateway", bucket=bucket(spec), access_key=access,
                      secret_key=secret)


def database_route(spec_path: Path, secrets: Path | None = None) -> DatabaseRoute:
    """The primary as routed by the first pgbouncer server's HAProxy, as the superuser."""
    spec = load_spec(spec_path)
    server = _first_with(spec_path, spec, "pgbouncer")
    _first_with(spec_path, spec, "postgres")
    sec = cluster_secrets(spec_path, spec, secrets)
    try:
        password = sec["postgres_superuser"]
    except KeyError:
        raise MigrateError(f"--to {spec_path}: the secrets hold no postgres superuser — deploy "
                           "the postgres role first (freehold deploy --roles postgres)") from None
    from freehold.roles.pgbouncer.config import PRIMARY_PORT

    return DatabaseRoute(spec_path=spec_path, spec=spec, server=server, remote_host="127.0.0.1",
                         remote_port=PRIMARY_PORT,
                         what="PostgreSQL primary (HAProxy of pgbouncer server)",
                         password=password)


def _ssh_settings(route: Route) -> Any:
    from freehold.deploy.ssh import settings_for

    return settings_for(route.spec_path, route.spec)


@contextmanager
def tunnel(route: Route) -> Iterator[int]:
    """A local port forwarded over SSH to the route's service, for the `with` block."""
    from freehold.app.devstack import free_port
    from freehold.deploy.ssh import HostKeyError, connection

    port = free_port()
    conn = connection(route.server, _ssh_settings(route))
    try:
        conn.open()
    except HostKeyError as e:
        raise MigrateError(f"--to {route.spec_path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any SSH failure becomes one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise MigrateError(f"--to {route.spec_path}: cannot SSH to {route.server.name} "
                           f"({route.server.public_address}): {first} — check the server runs "
                           "and its host key is known") from None
    try:
        with conn.forward_local(port, remote_port=route.remote_port,
                                remote_host=route.remote_host, local_host="127.0.0.1"):
            wait_listening(port)
            yield port
    finally:
        conn.close()


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Fabric's forward_local binds its local socket in a thread of its own: wait (bounded)
    until it accepts, or the first client is refused."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise MigrateError(f"the SSH tunnel's local port {port} is not listening after "
                       f"{timeout:.0f} s")


def is_url(to: str) -> bool:
    return "://" in to


@contextmanager
def media_target(to: str, endpoint: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, secrets: Path | None = None
                 ) -> Iterator[S3Location]:
    """An S3 location for `--to`: a URL as given, or a spec's S3 gateway through a tunnel."""
    if is_url(to):
        loc = parse_location(to, endpoint=endpoint)
        loc.access_key, loc.secret_key = access_key, secret_key
        yield loc
        return
    route = media_route(Path(to), secrets)
    with tunnel(route) as port:
        yield S3Location(bucket=route.bucket, endpoint=f"http://127.0.0.1:{port}",
                         access_key=access_key or route.access_key,
                         secret_key=secret_key or route.secret_key)


@contextmanager
def database_target(to: str, secrets: Path | None = None) -> Iterator[str]:
    """A PostgreSQL DSN for `--to`: a URL as given, or a spec's primary through a tunnel."""
    if to.startswith(("postgresql://", "postgres://")):
        yield to
        return
    if is_url(to):
        raise MigrateError(f"--to {to}: not a PostgreSQL URL — write postgresql://USER:PW@HOST"
                           ":PORT/DB or give a cluster spec file")
    route = database_route(Path(to), secrets)
    with tunnel(route) as port:
        yield (f"postgresql://{route.user}:{quote(route.password, safe='')}@127.0.0.1:{port}/"
               f"{route.database}")
