"""The app database of a deployed cluster, reached from the operator's machine for seeding.

The database router (HAProxy to the current Patroni primary, port 5000) listens on the mesh and
on loopback of the pgbouncer servers only, so the seed goes through an SSH tunnel (Fabric
`forward_local`) to `127.0.0.1:5000` on the first pgbouncer server: a session of its own, as
COPY and asyncpg's prepared statements need (pgbouncer pools by transaction). The app user's
password comes from the spec's encrypted secrets (deploy/secrets.py; `--secrets`, the
key from $FREEHOLD_SECRETS_KEY or ~/.config/freehold/<name>.key).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from freehold.deploy.loadtest.target import Target, TargetError


@contextmanager
def spec_dsn(target: Target, secrets_path: Path | None = None) -> Iterator[str]:
    if target.spec is None or target.spec_path is None:
        raise TargetError(f"{target.label}: not a spec — pass --dsn")
    from freehold.deploy.secrets import SecretsError, SecretStore, secrets_path_for
    from freehold.roles.pgbouncer.config import PRIMARY_PORT
    from freehold.roles.postgres.config import APP_DATABASE, APP_USER

    bouncers = target.spec.servers_with_role("pgbouncer")
    if not bouncers:
        raise TargetError(f"{target.spec_path}: no pgbouncer server — pass --dsn")
    store = SecretStore(secrets_path or secrets_path_for(target.spec_path), target.spec.name)
    if not store.path.exists():
        raise TargetError(f"--secrets {store.path}: no such secrets file — pass the one the "
                          "cluster was deployed with, or --dsn")
    try:
        password = store.load()["postgres_app"]
    except (SecretsError, KeyError) as exc:
        raise TargetError(f"{store.path}: {exc} — pass --dsn") from exc
    from freehold.deploy.migrate.targets import DatabaseRoute, MigrateError, tunnel

    route = DatabaseRoute(spec_path=target.spec_path, spec=target.spec, server=bouncers[0],
                          remote_host="127.0.0.1", remote_port=PRIMARY_PORT,
                          what="PostgreSQL primary (HAProxy of pgbouncer server)",
                          user=APP_USER, password=password, database=APP_DATABASE)
    try:
        with tunnel(route) as port:
            yield (f"postgresql://{APP_USER}:{quote(password, safe='')}@127.0.0.1:{port}/"
                   f"{APP_DATABASE}")
    except MigrateError as exc:
        raise TargetError(str(exc).replace("--to ", "")) from None
