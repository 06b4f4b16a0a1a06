"""What each role's settings under `roles.<role>` may say: every string that reaches a command, a
URL or a config file has a pattern (deploy.spec.models.spec_text), every number a range.

Keys a model does not name are kept as given (the loader checks some of them itself, e.g.
`redis.masters`); the roles read the validated values through `ClusterSpec.role_settings`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from freehold.app.settings import SettingsError, check_env
from freehold.deploy.spec.models import UnixUser, spec_problem, spec_text

# what roles/app sets itself in the app's environment: `roles.app.env` may not override it
APP_PLATFORM_ENV = frozenset({
    "FREEHOLD_DATABASE_URL", "FREEHOLD_DATABASE_READ_URL", "FREEHOLD_MIGRATE_URL",
    "FREEHOLD_DB_POOL_MAX", "FREEHOLD_DB_POOL_MIN", "FREEHOLD_SECRET_KEY",
    "FREEHOLD_COOKIE_SECURE", "FREEHOLD_TRUSTED_PROXIES", "FREEHOLD_WEB_WORKERS",
    "FREEHOLD_REDIS_URL", "FREEHOLD_REDIS_CLUSTER", "FREEHOLD_S3_ENDPOINT", "FREEHOLD_S3_BUCKET",
    "FREEHOLD_S3_ACCESS_KEY", "FREEHOLD_S3_SECRET_KEY", "FREEHOLD_DEVELOPMENT",
})
ENV_PREFIX = "FREEHOLD_"

Count = Annotated[int, Field(ge=1)]
Port = Annotated[int, Field(ge=1, le=65535)]
OneLine = spec_text(r"[^\x00-\x1f\x7f]*", "one line of text without control characters")
HostName = spec_text(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
                     "a server name: lower-case letters, digits and '-'")
Bucket = spec_text(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                   "an S3 bucket name: 3 to 63 lower-case letters, digits, '.' and '-'")
WebhookUrl = spec_text(r"https?://[A-Za-z0-9.\[\]:-]+(/[A-Za-z0-9._~%/:@?&=+,;!*#-]*)?",
                       "an http:// or https:// URL without spaces, quotes or '$'")
OnCalendar = spec_text(r"[A-Za-z0-9*:/ ,.~+-]{1,100}",
                       "a systemd OnCalendar expression, e.g. '*-*-* 02:30:00' or 'Sun 03:00'")
ByteSize = spec_text(r"[0-9]{1,15}(B|kB|MB|GB)?", "a size in bytes, e.g. 16MB or 1048576")
SshKey = spec_text(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
                   r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}"
                   r"( [A-Za-z0-9@._+=:/ -]*)?",
                   "an OpenSSH public key on one line: '<type> <base64> [comment]'")
WorkerKind = spec_text(r"[a-z]{1,32}", "a worker kind (lower-case letters)")


def app_env_name(key: str) -> str:
    """The variable a `roles.app.env` key sets: upper case, FREEHOLD_ prefix optional."""
    name = key.upper()
    return name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name


def _env_name(key: str) -> str:
    name = app_env_name(key)
    if name in APP_PLATFORM_ENV:
        raise spec_problem(f"'{key}' would override {name}, which the kit sets from the spec "
                           "and the secrets", "remove it")
    return key


def _env_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


EnvName = Annotated[spec_text(r"[A-Za-z][A-Za-z0-9_]{0,63}",
                              "letters, digits and '_' (an app setting, see app/settings.py)"),
                    AfterValidator(_env_name)]
EnvValue = Annotated[OneLine, BeforeValidator(_env_value)]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="allow")


class AppSettings(_Settings):
    port: Port | None = None
    workers: Count | None = None
    keep_releases: Count | None = None
    db_pool_max: Count | None = None
    env: dict[EnvName, EnvValue] | None = None

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str] | None) -> dict[str, str] | None:
        seen: dict[str, str] = {}
        for key in env or {}:
            name = app_env_name(key)
            if name in seen:
                raise spec_problem(f"'{key}' and '{seen[name]}' both set {name}", "keep one")
            seen[name] = key
        try:  # the app's own settings model judges names and values (app/settings.py)
            check_env({app_env_name(k): str(v) for k, v in (env or {}).items()})
        except SettingsError as exc:
            raise spec_problem(str(exc), "fix or remove it") from None
        return env


class AdminSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: UnixUser
    ssh_keys: list[SshKey] = Field(default_factory=list)


class BaseSettings(_Settings):
    admins: list[AdminSettings] | None = None


class BackupSettings(_Settings):
    repo_host: HostName | None = None
    repositories: Literal[1, 2] | None = None  # 2 (default): a second repository host
    full_at: OnCalendar | None = None
    full_at_second: OnCalendar | None = None  # the second repository's daily full backup
    compress: Literal["none", "gz", "bz2", "lz4", "zst"] | None = None
    retention_full: Count | None = None


def _zone_name(value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or any(len(x) > 63 for x in labels):
        raise spec_problem(f"{value!r} is not a domain name",
                           "use the platform's domain, e.g. example.social (2 labels or more, "
                           "each at most 63 characters)")
    return value


ZoneName = Annotated[spec_text(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]",
                               "a domain name in lower case without a final dot, "
                               "e.g. example.social"), AfterValidator(_zone_name)]
RecordName = spec_text(r"@|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
                       "'@' (the zone itself) or one label: lower-case letters, digits and '-'")


class DnsSettings(BaseModel):
    """`roles.dns`: the platform's zone, served by every dns server (roles/dns/config.py)."""

    model_config = ConfigDict(extra="forbid")
    zone: ZoneName
    names: list[RecordName] | None = Field(None, min_length=1)
    ttl: Annotated[int, Field(ge=5, le=3600)] | None = None
    check: Literal["readyz", "port"] | None = None
    check_interval: Annotated[int, Field(ge=1, le=60)] | None = None
    dnssec: bool | None = None
    # records the platform does not own (MX, TXT, …) in zone-file form, relative to the spec
    # (`freehold migrate dns --import` writes it)
    records: spec_text(r"[A-Za-z0-9._~/-]+", "a file path (letters, digits, '.', '_', '~', "
                       "'/', '-'), relative to the spec's folder") | None = None

    @field_validator("names")
    @classmethod
    def _no_repeats(cls, names: list[str] | None) -> list[str] | None:
        if names and len(set(names)) != len(names):
            raise spec_problem(f"{names} names one record twice", "list each name once")
        return names


class LbSettings(_Settings):
    vips: dict[str, ipaddress.IPv4Address] | None = None
    vrid_base: Annotated[int, Field(ge=0, le=255)] | None = None
    maxconn: Count | None = None
    conn_limit_per_ip: Count | None = None
    conn_limit_exempt: list[ipaddress.IPv4Network] | None = None


class MediaSettings(_Settings):
    bucket: Bucket | None = None
    copies: Count | None = None
    volume_size_limit_mb: Count | None = None


class MonitoringSettings(_Settings):
    webhook_url: WebhookUrl | None = None
    # seconds between scrapes; at most 60: the alert rules' 5-minute rates need several samples
    scrape_interval_s: Annotated[int, Field(ge=5, le=60)] | None = None
    replication_lag_bytes: Annotated[float, Field(ge=0)] | None = None
    error_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    p99_seconds: Annotated[float, Field(gt=0)] | None = None
    disk_free_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    disk_hours_to_full: Annotated[float, Field(gt=0)] | None = None
    fanout_lag_seconds: Annotated[float, Field(gt=0)] | None = None
    stream_lag_entries: Annotated[float, Field(ge=0)] | None = None


class PgbouncerSettings(_Settings):
    replica_max_lag: ByteSize | None = None
    pool_mode: Literal["session", "transaction", "statement"] | None = None
    haproxy_maxconn: Count | None = None
    max_client_conn: Count | None = None
    default_pool_size: Count | None = None


class PostgresSettings(_Settings):
    # a shell command by design (PostgreSQL runs it); it lands in Patroni's YAML, one line
    archive_command: OneLine | None = None
    archive_timeout: Annotated[int, Field(ge=0)] | None = None
    max_connections: Count | None = None


REDIS_MAX_NODES_PER_SERVER = 32  # ports 6379 + k stay below PgBouncer's 6432


class RedisSettings(_Settings):
    maxmemory_mb: Count | None = None  # per node
    # Redis nodes per server (single-threaded: one per core pair), ports 6379, 6380, …
    nodes_per_server: Annotated[int, Field(ge=1, le=REDIS_MAX_NODES_PER_SERVER)] | None = None
    node_timeout_ms: Annotated[int, Field(ge=100)] | None = None


class WorkerSettings(_Settings):
    per_server: dict[WorkerKind, Annotated[int, Field(ge=0)]] | None = None
    servers: dict[HostName, dict[WorkerKind, Annotated[int, Field(ge=0)]]] | None = None


ROLE_SETTINGS: dict[str, type[BaseModel]] = {
    "app": AppSettings, "base": BaseSettings, "backup": BackupSettings, "dns": DnsSettings,
    "lb": LbSettings,
    "media": MediaSettings, "monitoring": MonitoringSettings, "pgbouncer": PgbouncerSettings,
    "postgres": PostgresSettings, "redis": RedisSettings, "worker": WorkerSettings,
}


def validated(role: str, settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` checked against the role's model (pydantic ValidationError when bad), as the
    roles read them: the keys given (null ones left out, so the role's default applies),
    numbers as numbers, `env` values as text."""
    model = ROLE_SETTINGS.get(role)
    if model is None:
        return dict(settings)
    return model.model_validate(settings).model_dump(mode="json", exclude_unset=True,
                                                      exclude_none=True)
