"""Settings read from the environment (and a `.env` file); nothing else reads os.environ."""

from __future__ import annotations

import ipaddress
import math
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.auth.callers import Callers, CallersInvalid, load_callers
from app.auth.keys import ApiKey, parse_api_keys
from app.spend.prices import DEFAULT_CREDITS_PER_IMAGE, check_prices, parse_prices

MIN_CALLBACK_SECRET_BYTES = 32
DEFAULT_NOTIFY_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
# A NOTIFY_ALLOWED_HOSTS name: DNS labels, any of which may be `*` (`*.corp.example`).
_LABEL = r"(\*|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
_ALLOWED_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
MIN_METRICS_TOKEN_CHARS = 16


class Settings(BaseSettings):
    """The operators' contract: every field is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str = "sqlite+aiosqlite:///./evolink_jobs.db"
    evolink_api_key: SecretStr | None = None
    evolink_base_url: str = "https://api.evolink.ai"
    evolink_timeout_seconds: float = Field(default=30.0, gt=0)
    public_base_url: str | None = None
    allow_insecure_callbacks: bool = False
    callback_secret: SecretStr | None = None
    api_keys: Annotated[tuple[ApiKey, ...], NoDecode] = ()
    callers_file: Path | None = None
    log_level: str = "INFO"
    # /metrics (README, "Performance"): an optional bearer token, and how often the database's
    # job gauges are refreshed in the background (0: on each scrape).
    metrics_token: SecretStr | None = None
    metrics_refresh_seconds: float = Field(default=15, ge=0)
    # Database connections each process keeps (and never more: overflow connections opened
    # and closed per request under load cost more than the requests themselves).
    database_pool_size: int = Field(default=20, ge=1, le=500)
    # Connections of the hot paths' own asyncpg pool (PostgreSQL only; README, "Performance"),
    # beside DATABASE_POOL_SIZE. 0 turns the hot paths off: every request goes through FastAPI.
    hot_path_pool_size: int = Field(default=10, ge=0, le=500)

    # What one request may cost before the app sees it (see README, "Exposure").
    max_request_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    request_body_timeout_seconds: float = Field(default=30, gt=0)
    max_request_header_bytes: int = Field(default=16 * 1024, ge=4 * 1024)
    request_header_timeout_seconds: float = Field(default=15, gt=0)
    callbacks_port: int | None = Field(default=None, ge=1, le=65535)

    # Reliability: when background work polls, retries and gives up (see README, "Guarantees").
    reconcile_grace_seconds: float = Field(default=30, ge=0)
    job_deadline_seconds: float = Field(default=1800, gt=0)
    submit_unknown_deadline_seconds: float = Field(default=600, gt=0)
    submit_concurrency: int = Field(default=8, ge=1)
    verify_callbacks: bool = True
    default_estimated_seconds: float = Field(default=100, gt=0)
    poll_backoff_initial_seconds: float = Field(default=5, gt=0)
    poll_backoff_max_seconds: float = Field(default=60, gt=0)
    submit_backoff_initial_seconds: float = Field(default=2, gt=0)
    submit_backoff_max_seconds: float = Field(default=120, gt=0)
    worker_interval_seconds: float = Field(default=1.0, gt=0)
    worker_batch_size: int = Field(default=32, ge=1)
    claim_lease_seconds: float = Field(default=60, gt=0)
    idempotency_key_ttl_seconds: float = Field(default=86400, ge=86400)
    shutdown_timeout_seconds: float = Field(default=20, gt=0)

    # The results archive (README, "The archive"): where completed jobs' images are kept.
    archive_url: str = "file:./archive"
    archive_max_bytes: int = Field(default=50_000_000, gt=0)
    archive_allow_private_networks: bool = False
    archive_retention_days: float | None = Field(default=None, gt=0)
    archive_download_timeout_seconds: float = Field(default=30, gt=0)
    archive_backoff_initial_seconds: float = Field(default=5, gt=0)
    archive_backoff_max_seconds: float = Field(default=600, gt=0)
    archive_presigned_redirects: bool = False
    archive_presign_seconds: int = Field(default=300, gt=0, le=604_800)
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_region: str | None = None
    aws_endpoint_url: str | None = None

    # Spend control (README, "Spend"): prices, EvoLink's balance, the out-of-credits back-off.
    credits_per_image: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_CREDITS_PER_IMAGE)
    )
    credits_warn_below: float | None = Field(default=None, ge=0)
    out_of_credits_backoff_seconds: float = Field(default=30, gt=0)
    # Waiting (README, "Waiting and streams"): `Prefer: wait` and the job event stream.
    max_waiters: int = Field(default=1000, ge=1)
    wait_recheck_seconds: float = Field(default=5, gt=0, le=60)
    stream_heartbeat_seconds: float = Field(default=15, gt=0, le=300)
    # Webhooks to callers (README, "Webhooks"): who may be called, and how often it is retried.
    notify_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    notify_retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_NOTIFY_RETRY_SCHEDULE
    notify_timeout_seconds: float = Field(default=10, gt=0)

    # The web console (README, "Web console"): its session cookie's key and lifetime.
    console_secret: SecretStr | None = None
    console_session_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 86400)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("credits_per_image", mode="before")
    @classmethod
    def _parse_prices(cls, value: object) -> object:
        return parse_prices(value) if isinstance(value, str) else value

    @field_validator("credits_per_image")
    @classmethod
    def _prices_complete(cls, value: dict[str, float]) -> dict[str, float]:
        return check_prices(value)

    @field_validator("notify_allowed_hosts", mode="before")
    @classmethod
    def _parse_allowed_hosts(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        entries = tuple(entry.strip() for entry in value.split(",") if entry.strip())
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _ALLOWED_HOST.match(entry):
                    raise ValueError(
                        f"{entry[:80]!r} is neither a host name, a wildcard (*.corp.example), "
                        "an IP address nor a CIDR range"
                    ) from None
        return entries

    @field_validator("notify_retry_schedule", mode="before")
    @classmethod
    def _parse_retry_schedule(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        delays: list[float] = []
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            try:
                delay = float(entry)
            except ValueError:
                raise ValueError(f"{entry[:40]!r} is not a number of seconds") from None
            if not math.isfinite(delay) or delay < 0:
                raise ValueError(f"{entry[:40]!r} must be 0 or more seconds")
            delays.append(delay)
        return tuple(delays)

    @field_validator(
        "callers_file", "callbacks_port", "credits_warn_below", "console_secret", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _metrics_token(cls, value: object) -> object:
        if value == "" or value is None:
            return None
        if isinstance(value, str) and len(value) < MIN_METRICS_TOKEN_CHARS:
            raise ValueError(f"must be at least {MIN_METRICS_TOKEN_CHARS} characters (or unset)")
        return value

    @field_validator("callback_secret", "console_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_CALLBACK_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_CALLBACK_SECRET_BYTES} bytes")
        return value

    @field_validator("public_base_url", "evolink_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("archive_url")
    @classmethod
    def _archive_url(cls, value: str) -> str:
        if value != "off" and not value.startswith(("file:", "s3://")):
            raise ValueError(
                "must be off, file:///path (or file:relative/path) or s3://bucket/prefix"
            )
        return value

    @field_validator("archive_retention_days", mode="before")
    @classmethod
    def _empty_means_forever(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _callbacks_must_be_https(self) -> Settings:
        url = self.public_base_url
        if url and not url.startswith("https://") and not self.allow_insecure_callbacks:
            raise ValueError(
                "PUBLIC_BASE_URL must be https:// (EvoLink only calls HTTPS callback URLs); "
                "set ALLOW_INSECURE_CALLBACKS=true for local work"
            )
        return self

    @model_validator(mode="after")
    def _downloads_end_within_their_lease(self) -> Settings:
        # A download outliving its claim would let a second worker start the same image.
        if self.archive_url != "off" and (
            self.archive_download_timeout_seconds >= self.claim_lease_seconds
        ):
            raise ValueError(
                "ARCHIVE_DOWNLOAD_TIMEOUT_SECONDS must be shorter than CLAIM_LEASE_SECONDS "
                f"({self.archive_download_timeout_seconds:g} >= {self.claim_lease_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _callers_are_valid(self) -> Settings:
        self._load_callers()
        return self

    @cached_property
    def callers(self) -> Callers:
        """Every caller, from API_KEYS and CALLERS_FILE (validated when the settings were made)."""
        return self._load_callers()

    def _load_callers(self) -> Callers:
        try:
            return load_callers(
                tuple((entry.name, entry.key) for entry in self.api_keys), self.callers_file
            )
        except CallersInvalid as exc:
            raise ValueError(str(exc)) from None

    def missing_for_serving(self) -> list[str]:
        """Names of the settings `serve` needs that are not set."""
        required = {
            "EVOLINK_API_KEY": self.evolink_api_key,
            "PUBLIC_BASE_URL": self.public_base_url,
            "CALLBACK_SECRET": self.callback_secret,
            "API_KEYS or CALLERS_FILE": self.api_keys or self.callers_file,
        }
        return [name for name, value in required.items() if value is None]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
