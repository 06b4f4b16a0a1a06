"""Resolve `--to SPEC|URL` into a target: the new cluster's media store or its database."""

from __future__ import annotations

from pathlib import Path

from deploy.migrate import MigrateError
from deploy.migrate.s3client import SEAWEED_S3_PORT, S3Location, parse_location

MEDIA_BUCKET = "media"


def _load_spec(path: Path):  # noqa: ANN202 - the spec engineer's type
    try:
        from deploy.spec import SpecError, load_spec
    except ImportError:
        raise MigrateError(f"{path}: cluster specs are not readable yet (deploy.spec missing) "
                           "— pass a URL instead") from None
    try:
        return load_spec(path)
    except SpecError as e:
        raise MigrateError(e.problems[0] if e.problems else str(e)) from None


def media_target(to: str, endpoint: str | None = None) -> S3Location:
    """A URL as given, or the S3 gateway of the first `media` server of a cluster spec."""
    if "://" in to:
        return parse_location(to, endpoint=endpoint)
    path = Path(to)
    if not path.exists():
        raise MigrateError(f"{to}: no such spec file — give a cluster spec or an S3 URL")
    spec = _load_spec(path)
    media = spec.servers_with_role("media")
    if not media:
        raise MigrateError(f"{to}: no server has the media role — add it to a server's roles")
    return S3Location(bucket=MEDIA_BUCKET,
                      endpoint=f"http://{media[0].private_address}:{SEAWEED_S3_PORT}")


def database_target(to: str) -> str:
    """A postgresql:// URL as given, or the pgbouncer/postgres primary of a cluster spec."""
    if to.startswith(("postgresql://", "postgres://")):
        return to
    path = Path(to)
    if not path.exists():
        raise MigrateError(f"{to}: no such spec file — give a cluster spec or postgresql:// URL")
    spec = _load_spec(path)
    pg = spec.servers_with_role("postgres")
    if not pg:
        raise MigrateError(f"{to}: no server has the postgres role — add it to a server's roles")
    return f"postgresql://freehold@{pg[0].private_address}:5432/freehold"
