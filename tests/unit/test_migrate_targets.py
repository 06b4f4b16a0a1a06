"""`migrate objects/database --to SPEC`: the spec's media S3 gateway and database route are
resolved (address, port, bucket, credentials from the secrets); a spec without the role, without
secrets, or a bad URL is one line and exit 2 before anything is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.migrate import MigrateError
from freehold.deploy.migrate.targets import (
    database_route,
    database_target,
    media_route,
    media_target,
)
from freehold.deploy.secrets import KEY_ENV, SecretStore
from freehold.deploy.spec import load_spec

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab.yaml"
# nothing listens on port 9 of loopback: a source the tests never reach
NOWHERE = "postgresql://x:y@127.0.0.1:9/db"


@pytest.fixture()
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    k = Fernet.generate_key()
    monkeypatch.setenv(KEY_ENV, k.decode())
    return k


def write_spec(tmp_path: Path, drop: str | None = None, bucket: str | None = None) -> Path:
    """inventories/lab.yaml, optionally without any server carrying role `drop`."""
    doc = yaml.safe_load(LAB.read_text())
    if drop:
        for s in doc["servers"]:
            s["roles"] = [r for r in s["roles"] if r != drop]
        doc.get("roles", {}).pop(drop, None)
    if bucket:
        doc.setdefault("roles", {}).setdefault("media", {})["bucket"] = bucket
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_secrets(spec_path: Path, key: bytes) -> dict[str, str]:
    spec = load_spec(spec_path)
    store = SecretStore(spec_path.with_suffix(".secrets"), spec.name, key=key)
    return store.ensure([s.name for s in spec.servers]).cluster


def test_media_route_is_the_first_media_servers_s3_gateway(tmp_path: Path, key: bytes) -> None:
    spec_path = write_spec(tmp_path, bucket="pics")
    sec = write_secrets(spec_path, key)
    spec = load_spec(spec_path)
    first = spec.servers_with_role("media")[0]
    route = media_route(spec_path)
    assert route.server.name == first.name == "a1"
    assert (route.remote_host, route.remote_port) == (first.mesh_address, 8333)
    assert route.remote_host.startswith("100.96.")  # SeaweedFS binds the mesh address only
    assert route.bucket == "pics"
    assert (route.access_key, route.secret_key) == (sec["s3_access_key"], sec["s3_secret_key"])
    assert f"root@{first.public_address}" in route.describe()


def test_database_route_is_the_primary_through_the_pgbouncer_server(tmp_path: Path,
                                                                    key: bytes) -> None:
    spec_path = write_spec(tmp_path)
    sec = write_secrets(spec_path, key)
    route = database_route(spec_path)
    assert route.server.name == "a2"  # the first pgbouncer server of inventories/lab.yaml
    assert (route.remote_host, route.remote_port) == ("127.0.0.1", 5000)  # HAProxy: primary
    assert (route.user, route.database) == ("postgres", "freehold")
    assert route.password == sec["postgres_superuser"]


@pytest.mark.parametrize(("role", "resolve"), [("media", media_route),
                                               ("pgbouncer", database_route)])
def test_spec_without_the_role_is_one_line(tmp_path: Path, key: bytes, role: str,
                                           resolve: object) -> None:
    spec_path = write_spec(tmp_path, drop=role)
    write_secrets(spec_path, key)
    with pytest.raises(MigrateError, match=f"no server has the {role} role") as e:
        resolve(spec_path)  # type: ignore[operator]
    assert "\n" not in str(e.value)


def test_missing_or_unreadable_secrets(tmp_path: Path, key: bytes,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spec_path = write_spec(tmp_path)
    with pytest.raises(MigrateError, match="no secrets at .*cluster.secrets — deploy"):
        media_route(spec_path)
    write_secrets(spec_path, key)
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(MigrateError, match="cannot decrypt"):
        database_route(spec_path)


def test_urls_pass_through_unchanged() -> None:
    with media_target("http://127.0.0.1:8333/media/x", access_key="k", secret_key="s") as loc:
        assert (loc.endpoint, loc.bucket, loc.prefix, loc.access_key) == (
            "http://127.0.0.1:8333", "media", "x", "k")
    with database_target("postgresql://u:p@h:5/db") as dsn:
        assert dsn == "postgresql://u:p@h:5/db"
    with pytest.raises(MigrateError, match="not a PostgreSQL URL"), database_target("http://h/"):
        pass
    with pytest.raises(MigrateError, match="no such spec file"), media_target("nope.yaml"):
        pass


def _one_line_exit_2(args: list[str]) -> str:
    r = CliRunner().invoke(app, ["migrate", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


def test_cli_to_spec_without_the_role(tmp_path: Path, key: bytes) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: freehold-migration-manifest\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    no_media = write_spec(tmp_path / "a", drop="media")
    write_secrets(no_media, key)
    line = _one_line_exit_2(["objects", "--from", "s3://bucket", "--from-endpoint",
                             "http://127.0.0.1:9", "--to", str(no_media), "--manifest",
                             str(manifest)])
    assert "no server has the media role" in line and "add media" in line
    no_bouncer = write_spec(tmp_path / "b", drop="pgbouncer")
    write_secrets(no_bouncer, key)
    line = _one_line_exit_2(["database", "--from", NOWHERE, "--to", str(no_bouncer)])
    assert "no server has the pgbouncer role" in line
    line = _one_line_exit_2(["database", "--from", "mysql://x", "--to", str(no_bouncer)])
    assert "--from mysql://x: not a PostgreSQL URL" in line
    # a refused target starts nothing: the runbook's state file was not touched
    assert not (tmp_path / "m.state").exists()
