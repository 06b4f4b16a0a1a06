"""All settings of the social app, read from `FREEHOLD_*` environment variables.

One frozen pydantic-settings model: every field name maps to `FREEHOLD_<NAME>` in upper case and
each value is parsed for its type (a boolean is 1/0, true/false, yes/no or on/off: "2" is an
error naming the variable, not a silent False; an integer is digits). `Settings.from_env()`
builds it from an environment, `settings.replace(...)` derives variants (tests use that for small
limits), and roles/app/config.py renders the servers' environment through the same model, so a
setting the app does not know or a value of the wrong kind fails the deploy's check, not the app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEV_SECRET_KEY = "dev-secret-change-me"


class SettingsError(ValueError):
    """A `FREEHOLD_*` variable holds a value of the wrong kind; the message names it."""


def env_name(field: str) -> str:
    return f"FREEHOLD_{field.upper()}"


# read by the processes themselves, not settings: app.serve's listener and workers, the worker's
# metrics port, the migration unit's single-host DSN
PROCESS_ENV = frozenset({"FREEHOLD_HOST", "FREEHOLD_PORT", "FREEHOLD_WEB_WORKERS",
                         "FREEHOLD_TRUSTED_PROXIES", "FREEHOLD_WORKER_METRICS_PORT",
                         "FREEHOLD_MIGRATE_URL"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_default=True)

    # data stores
    database_url: str = "postgresql://freehold:freehold@127.0.0.1:5432/freehold"
    database_read_url: str = ""  # replica DSN for lag-tolerant reads; empty = database_url
    read_your_writes_ms: int = 2000  # after a write, an account reads the primary this long
    db_pool_min: int = 2
    db_pool_max: int = 20
    # a new connection's whole budget across the DSN's hosts: asyncpg's default 60 s let one
    # attempt wait out a dead second host (another site's router) long after the first one
    # had a primary again (lab site-kill: writes back after 64 s)
    db_connect_timeout_s: float = 3.0
    # a request's database work that failed while the primary moved, having committed
    # nothing, is retried until this long after the request began, then 503 (app.dbretry);
    # 0: never. Under a 5 s client timeout; a planned switchover pauses writes ~4.4 s on the
    # lab (the rolling-restart drill), a budget of 4 s from the first failure left 1 request
    # of 386 unanswered there
    db_retry_s: float = Field(4.5, ge=0)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    redis_pool_max: int = 64
    # A Redis master whose server lost power answers nothing: without these a command or a
    # connection to it waits for the kernel (minutes) and holds the request, until the
    # cluster's failover (cluster-node-timeout + election) and a slot-map refresh move the
    # client on. Blocking reads (XREAD/XREADGROUP) block at most 1 s, inside the 3 s.
    redis_connect_timeout_s: float = 1.0
    redis_socket_timeout_s: float = 3.0
    # object storage (S3-compatible)
    s3_endpoint: str = ""
    s3_bucket: str = "freehold-media"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    media_max_bytes: int = 8 * 1024 * 1024
    media_url_prefix: str = "/media/"  # public URL prefix of media keys (app proxy or CDN)
    # web: the key signs sessions and CSRF tokens; the public default serves only when
    # `development` is set (FREEHOLD_DEVELOPMENT=1, as app.dev does), see check_startup()
    secret_key: str = DEV_SECRET_KEY
    development: bool = False
    cookie_secure: bool = False
    session_days: int = 30
    # app limits
    post_max_chars: int = 1000
    post_max_images: int = 4
    feed_cap: int = 800
    feed_page_max: int = 100
    feed_ttl_days: int = 30  # a feed not read this long expires from Redis (rebuilt on return)
    big_account_followers: int = 10000  # at or above: merged at read time, not fanned out
    # each app process keeps the newest ids of the big accounts its readers follow this long
    # (a post of a big account reaches other processes' readers this much later; 0: no cache)
    big_head_ttl_ms: int = 1000
    inactive_days: int = 30  # no fan-out to accounts inactive this long
    # moderation
    jury_votes: int = 3  # N agreeing votes decide a case
    strikes_to_suspend: int = 3  # M strikes suspend an account
    # rate limits: count per window (seconds)
    # sign-up backstop per address (an IPv6 /signup_ipv6_prefix counts as one): sized for
    # carrier-grade NAT, where thousands of phones share an address; bursts below it pay a
    # proof of work instead (app/services/signup_proof.py, docs/signup-limits.md)
    rl_signup_per_ip: int = 1000
    rl_signup_window: int = 3600
    signup_ipv6_prefix: int = 64
    signup_pow_free_per_ip: int = 5  # sign-ups per window from an address with no proof
    signup_pow_min_bits: int = 17  # first difficulty past the free allowance (2**17 hashes)
    signup_pow_max_bits: int = 22  # ceiling; 0 turns proofs off (the backstop alone)
    signup_pow_surge_per_window: int = 10_000  # whole site: past it everyone proves; 0: never
    signup_pow_ttl_s: int = 600  # a challenge is good this long
    rl_login_per_ip: int = 30
    rl_login_per_account: int = 10
    rl_login_window: int = 300
    rl_write_per_account: int = 120
    rl_write_per_ip: int = 600
    rl_write_window: int = 60
    # the Mastodon client API (app/mastodon): requests per access token (or client address
    # without one) per window, answered with X-RateLimit-* headers, 429 past it; 0: no limit
    masto_rate_limit: int = 300
    masto_rate_window: int = 300
    # streaming (/api/v1/streaming): open connections per account (429 past it), and the
    # seconds between heartbeats (an SSE comment / a WebSocket ping; the bound's liveness too)
    masto_stream_per_account: int = 8
    masto_stream_heartbeat_s: int = 15
    # workers
    stream_maxlen: int = 1_000_000
    worker_batch: int = 50
    worker_block_ms: int = 1000
    worker_claim_idle_ms: int = 15000  # pending entries idle this long are claimed
    fanout_chunk: int = 1000  # followers per pipeline
    fanout_chunk_pause_ms: int = 0  # throttle between chunks (protects Redis during surges)
    trends_hours: int = 24
    trends_interval_s: int = 60
    # benchmarks only: exposes /api/v1/timelines/home_pull (the pull-on-read baseline)
    bench_endpoints: bool = False
    # admins: usernames that become admins when they sign up (bootstrap only)
    bootstrap_admins: str = ""

    @property
    def read_url(self) -> str:
        return self.database_read_url or self.database_url

    @property
    def admin_usernames(self) -> set[str]:
        return {u.strip().lower() for u in self.bootstrap_admins.split(",") if u.strip()}

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **others: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings(...)` takes only what it is given; from_env() names the environment it reads
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings of `env` (default: this process's environment), then `overrides`."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {name: env[env_name(name)] for name in cls.model_fields
                                  if env_name(name) in env}
        values.update(overrides)
        return cls.checked(values)

    @classmethod
    def checked(cls, values: Mapping[str, Any]) -> Settings:
        """`Settings(**values)`; a value of the wrong kind or an unknown name raises
        SettingsError naming the variable."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "extra_forbidden":
                raise SettingsError(f"{env_name(name)}: no such setting of the app — see "
                                    "app/settings.py for the names there are") from None
            raise SettingsError(f"{env_name(name)}={values.get(name)!r}: {err['msg'].lower()}"
                                ) from None

    def check_startup(self) -> None:
        """Refuse to serve with settings that are only safe on a developer's machine, or that
        contradict each other."""
        if self.worker_block_ms / 1000 + 1 > self.redis_socket_timeout_s:
            raise SettingsError(
                f"{env_name('redis_socket_timeout_s')}={self.redis_socket_timeout_s}: must exceed "
                f"{env_name('worker_block_ms')} ({self.worker_block_ms} ms) by 1 s or more — "
                "a blocking read would time out")
        if not self.development and self.secret_key in ("", DEV_SECRET_KEY):
            raise SettingsError(
                "FREEHOLD_SECRET_KEY is not set, so sessions and CSRF tokens would be signed "
                "with the public development key — set FREEHOLD_SECRET_KEY to a long random "
                "value (python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), or "
                "FREEHOLD_DEVELOPMENT=1 on a development machine")

    def replace(self, **changes: Any) -> Settings:
        return self.checked({**self.model_dump(), **changes})

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        return to_env(self.model_dump())


def check_env(env: Mapping[str, str]) -> Settings:
    """The settings an environment rendered for the app's servers gives; every FREEHOLD_*
    name must be a setting (or a process knob of PROCESS_ENV) and every value of its kind,
    else SettingsError naming the variable."""
    names = {env_name(name): name for name in Settings.model_fields}
    for key in env:
        if key.startswith("FREEHOLD_") and key not in names and key not in PROCESS_ENV:
            raise SettingsError(f"{key}: no such setting of the app — see app/settings.py for "
                                "the names there are")
    return Settings.from_env(env)


def to_env(values: Mapping[str, Any]) -> dict[str, str]:
    """`FREEHOLD_*` variables of setting values (booleans as 1/0)."""
    return {env_name(name): ("1" if v else "0") if isinstance(v, bool) else str(v)
            for name, v in values.items()}
