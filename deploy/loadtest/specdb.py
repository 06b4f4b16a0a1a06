"""The app database of a deployed cluster, reached from the operator's machine for seeding.

pgbouncer listens on the mesh and on loopback of the pgbouncer servers only, so the seed goes
through an SSH tunnel (Fabric `forward_local`) to `127.0.0.1:6432` on the first pgbouncer server;
the app user's password comes from the spec's encrypted secrets (deploy/provision/secrets.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from deploy.loadtest.plan import Target, TargetError
from deploy.localservices import free_port


@contextmanager
def spec_dsn(target: Target) -> Iterator[str]:
    if target.spec is None or target.spec_path is None:
        raise TargetError(f"{target.label}: not a spec — pass --dsn")
    from deploy.loadtest.remote import _ssh
    from deploy.provision.patroni import connect
    from deploy.provision.secrets import SecretsError, SecretStore, secrets_path_for
    from roles.pgbouncer.config import PGBOUNCER_PORT
    from roles.postgres.config import APP_DATABASE, APP_USER

    bouncers = target.spec.servers_with_role("pgbouncer")
    if not bouncers:
        raise TargetError(f"{target.spec_path}: no pgbouncer server — pass --dsn")
    store = SecretStore(secrets_path_for(target.spec_path), target.spec.name)
    if not store.path.exists():
        raise TargetError(f"{store.path}: no secrets — deploy the cluster first "
                          "(`freehold deploy`), or pass --dsn")
    try:
        password = store.load()["postgres_app"]
    except (SecretsError, KeyError) as exc:
        raise TargetError(f"{store.path}: {exc} — pass --dsn") from exc
    port = free_port()
    with connect(bouncers[0], _ssh(target)) as conn:
        try:
            conn.open()  # forward_local needs the transport: it does not connect by itself
        except Exception as exc:  # noqa: BLE001 - any SSH failure becomes one line
            raise TargetError(f"{target.spec_path}: cannot SSH to {bouncers[0].name}: "
                              f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
                              " — check the server runs and its host key is known") from None
        with conn.forward_local(port, remote_port=PGBOUNCER_PORT, remote_host="127.0.0.1",
                                local_host="127.0.0.1"):
            yield (f"postgresql://{APP_USER}:{quote(password, safe='')}@127.0.0.1:{port}/"
                   f"{APP_DATABASE}")
