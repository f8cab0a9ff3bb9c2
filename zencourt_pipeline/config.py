"""Process configuration read from the environment (names fixed by docs/contract.md section 2).

Everything has an embedded default so that `zencourt demo` works with nothing set:
SQLite under the local data dir, local file storage, the offline `local` generator.

This module is the only reader of the process environment: `Settings.ENV` maps each field to
its variable, and the README's table, docs/contract.md and docker/.env.example are tested
against it (zencourt_pipeline_tests/test_config.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, ValidationError, field_validator

from zencourt_pipeline.domain import Executor, Provider, StorageBackend, names

PROVIDER_NAMES = names(Provider)


def default_data_dir() -> Path:
    """Where embedded state lives (SQLite db, local storage, Dagster home) when ZENCOURT_DATA_DIR
    is unset: `.zencourt` under the working directory (`Settings.from_env` reads the variable)."""
    return (Path.cwd() / ".zencourt").resolve()


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _flag(value: str) -> bool:
    return value.lower() not in ("0", "false", "no", "off")


def environment_has(name: str, value: str | None) -> bool:
    """Whether the process environment sets `name` to `value` (a secret read from it reaches
    Dagster as an EnvVar reference, one passed in code as it is)."""
    return bool(value) and os.environ.get(name) == value


_MODEL_RATE_KEYS = {"credits_per_second", "usd_per_second", "usd_base", "base_seconds", "usd_per_extra_second"}
_PROVIDER_RATE_KEYS = {"usd_per_credit", "default_model", "models"}


def as_number(value: Any) -> float | None:
    """`value` as a float when it is a real number (not a bool), else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def validate_rates(table: Any) -> dict[str, Any]:
    """`table` if it has the rate table's shape (`providers/rates.py`'s docstring), else ValueError."""
    if not isinstance(table, Mapping):
        raise ValueError("provider rates must be a JSON object of providers")
    for provider, entry in table.items():
        if not isinstance(entry, Mapping) or set(entry) - _PROVIDER_RATE_KEYS:
            raise ValueError(
                f"rates of {provider!r}: expected an object with keys among {sorted(_PROVIDER_RATE_KEYS)}"
            )
        if "usd_per_credit" in entry and (as_number(entry["usd_per_credit"]) is None or entry["usd_per_credit"] < 0):
            raise ValueError(f"rates of {provider!r}: usd_per_credit must be a number >= 0")
        models = entry.get("models", {})
        if not isinstance(models, Mapping):
            raise ValueError(f"rates of {provider!r}: models must be an object")
        for model, rate in models.items():
            if not isinstance(rate, Mapping) or not rate or set(rate) - _MODEL_RATE_KEYS:
                raise ValueError(f"rate of {provider}/{model}: expected keys among {sorted(_MODEL_RATE_KEYS)}")
            bad = [key for key, value in rate.items() if as_number(value) is None or value < 0]
            if bad:
                raise ValueError(f"rate of {provider}/{model}: {bad} must be numbers >= 0")
    return dict(table)


class Settings(BaseModel):
    """A snapshot of the environment. Build with `Settings.from_env()`."""

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    storage_backend: str = "local"

    b2_endpoint: str | None = None
    b2_key_id: str | None = None
    b2_application_key: str | None = None
    b2_bucket_name: str | None = None
    b2_region: str = "us-west-002"

    generation_providers: list[str] = Field(default_factory=lambda: ["local"])

    runway_api_key: str | None = None
    runway_api_url: str = "https://api.dev.runwayml.com"
    runway_api_version: str = "2024-11-06"
    runway_model: str = "gen4_turbo"

    fal_key: str | None = None
    fal_queue_url: str = "https://queue.fal.run"
    fal_model: str = "fal-ai/kling-video/v2.1/standard/image-to-video"
    fal_webhook_url: str | None = None
    fal_jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"
    fal_webhook_overdue_seconds: float = 120.0

    video_server_url: str = "http://localhost:3001"
    video_server_api_key: str | None = None
    port: int = 3001
    # requests per minute of each workspace API key (a token bucket per key in each service
    # process, so N replicas allow N times this); 0 = unlimited. The admin key is not limited.
    api_key_requests_per_minute: int = Field(default=600, ge=0)

    vercel_api_url: str | None = None
    vercel_webhook_secret: str | None = None
    vercel_webhook_path: str = "/api/webhooks/video-server"

    enable_final_composition: bool = True
    media_allowed_private_hosts: list[str] = Field(default_factory=list)
    # POST /storage/upload: the largest body taken (413 above)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)

    # logs (observability/logging.py): the level, `json` or `text` lines (unset: text on a
    # terminal, else JSON) and the `role` field when the process does not name one
    log_level: str = "info"
    log_format: Literal["json", "text"] | None = None
    process_role: str | None = None

    # clips a listing (or a workspace, when the batch names one) may have generated per calendar
    # month (UTC); 0 = unlimited. A batch that cannot fit is rejected at intake, and every paid
    # submission reserves its clip under a row lock first (QUOTA_EXCEEDED, nothing paid).
    monthly_clip_quota: int = Field(default=0, ge=0)
    workspace_monthly_clip_quota: int = Field(default=0, ge=0)

    # ZENCOURT_PROVIDER_RATES: overrides of the task cost rate table (providers/rates.py)
    provider_rates: dict[str, Any] | None = None

    # liveness (pipeline/liveness.py): clips still generating this long after a batch started
    # fail GENERATION_TIMEOUT; a batch still open after generation + composition deadlines fails;
    # a failed intake or compose run gets at most this many attempts
    generation_deadline_seconds: float = Field(default=7200.0, gt=0)
    composition_deadline_seconds: float = Field(default=1800.0, gt=0)
    max_run_attempts: int = Field(default=3, ge=1)

    # operations (GET /health): provider and daemon probes are cached this long; the daemon's
    # heartbeats are read from the instance of DAGSTER_HOME when it is set
    health_cache_seconds: float = Field(default=30.0, ge=0)
    # STORAGE_HEALTH_CACHE_MS (the Node server's name): how long a successful storage probe is
    # reused; unset = `health_cache_seconds`, 0 = probe on every call
    storage_health_cache_ms: int | None = Field(default=None, ge=0)
    dagster_home: str | None = None
    # operator actions over HTTP (POST /video/batches/{id}/recompose, /regenerate) launch their runs
    # through the Dagster webserver's GraphQL API here (e.g. http://webserver:3000); unset: 503
    dagster_webserver_url: str | None = None

    # a finished (paid) task's output is downloaded again, from fresh URLs, on failure; after this
    # many failed downloads (each URL tried counts one) its job fails OUTPUT_DOWNLOAD_FAILED
    max_download_attempts: int = Field(default=5, ge=1)

    # playable media URLs (storage/urls.py): the status API and the webhooks give `videoUrl`s a
    # <video> tag can load: PUBLIC_MEDIA_BASE_URL + key when set (a public bucket or a CDN), else
    # presigned (or, for local storage, service-signed) URLs living MEDIA_URL_EXPIRES_SECONDS.
    # One day: a status page left open still plays, a leaked URL dies within a day, and each
    # status read or webhook delivery mints a fresh one, so a short life costs nothing.
    public_media_base_url: str | None = None
    media_url_expires_seconds: int = Field(default=86_400, ge=60, le=604_800)

    # live progress (GET /video/batches/{id}/events): how often a stream reads the event table,
    # and how often it sends a heartbeat comment when nothing happened (proxies drop idle streams)
    events_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    events_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)

    # partition retention (defs/retention.py): the dynamic partition of a batch that ended more
    # than this many days ago is removed (the app database keeps its rows, URLs and history;
    # recompose or regenerate adds it back first). 0 keeps every partition. 30 days at 1,000
    # batches a day keeps about 30,000 per asset, under the counts that slow Dagster's UI down.
    partition_retention_days: int = Field(default=30, ge=0, le=3650)

    # step execution (defs/executors.py): `in_process` (the default: `make demo` needs no broker)
    # or `celery`: each step goes to a Celery worker over ZENCOURT_CELERY_BROKER_URL (RabbitMQ,
    # or Redis), on the queue of its kind of work; workers start with `zencourt worker --queue Q`
    executor: Executor = Executor.IN_PROCESS
    celery_broker_url: str = "pyamqp://guest:guest@127.0.0.1:5672//"

    @field_validator("generation_providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in PROVIDER_NAMES]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; expected some of {PROVIDER_NAMES}")
        if not value:
            raise ValueError("GENERATION_PROVIDERS must name at least one provider")
        return value

    @field_validator("provider_rates", mode="before")
    @classmethod
    def _rates_shape(cls, value: Any) -> dict[str, Any] | None:
        if isinstance(value, str):  # ZENCOURT_PROVIDER_RATES: a JSON object
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"ZENCOURT_PROVIDER_RATES is not JSON: {exc}") from exc
        return None if value is None else validate_rates(value)

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> Any:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("public_media_base_url")
    @classmethod
    def _media_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        loopback = parsed.hostname in ("localhost", "127.0.0.1", "::1")
        if not parsed.hostname or parsed.query or parsed.fragment or not (
            parsed.scheme == "https" or (parsed.scheme == "http" and loopback)
        ):
            raise ValueError("PUBLIC_MEDIA_BASE_URL must be an https URL (plain http only on loopback)")
        return value.rstrip("/")

    @field_validator("storage_backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in names(StorageBackend):
            raise ValueError(f"STORAGE_BACKEND must be one of {names(StorageBackend)}")
        return value

    # the variable of each field (names of docs/contract.md section 2); every one is optional
    ENV: ClassVar[dict[str, str]] = {
        "data_dir": "ZENCOURT_DATA_DIR",
        "database_url": "DATABASE_URL",
        "storage_backend": "STORAGE_BACKEND",
        "b2_endpoint": "B2_ENDPOINT",
        "b2_key_id": "B2_KEY_ID",
        "b2_application_key": "B2_APPLICATION_KEY",
        "b2_bucket_name": "B2_BUCKET_NAME",
        "b2_region": "B2_REGION",
        "generation_providers": "GENERATION_PROVIDERS",
        "runway_api_key": "RUNWAY_API_KEY",
        "runway_api_url": "RUNWAY_API_URL",
        "runway_api_version": "RUNWAY_API_VERSION",
        "runway_model": "RUNWAY_MODEL",
        "fal_key": "FAL_KEY",
        "fal_queue_url": "FAL_QUEUE_URL",
        "fal_model": "FAL_MODEL",
        "fal_webhook_url": "FAL_WEBHOOK_URL",
        "fal_jwks_url": "FAL_JWKS_URL",
        "fal_webhook_overdue_seconds": "FAL_WEBHOOK_OVERDUE_SECONDS",
        "video_server_url": "VIDEO_SERVER_URL",
        "video_server_api_key": "VIDEO_SERVER_API_KEY",
        "port": "PORT",
        "api_key_requests_per_minute": "ZENCOURT_API_KEY_REQUESTS_PER_MINUTE",
        "vercel_api_url": "VERCEL_API_URL",
        "vercel_webhook_secret": "VERCEL_WEBHOOK_SECRET",
        "vercel_webhook_path": "VERCEL_WEBHOOK_PATH",
        "enable_final_composition": "ENABLE_FINAL_COMPOSITION",
        "media_allowed_private_hosts": "MEDIA_ALLOWED_PRIVATE_HOSTS",
        "max_upload_bytes": "MAX_UPLOAD_BYTES",
        "log_level": "LOG_LEVEL",
        "log_format": "ZENCOURT_LOG_FORMAT",
        "process_role": "ZENCOURT_PROCESS_ROLE",
        "monthly_clip_quota": "ZENCOURT_MONTHLY_CLIP_QUOTA",
        "workspace_monthly_clip_quota": "ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA",
        "provider_rates": "ZENCOURT_PROVIDER_RATES",
        "generation_deadline_seconds": "ZENCOURT_GENERATION_DEADLINE_SECONDS",
        "composition_deadline_seconds": "ZENCOURT_COMPOSITION_DEADLINE_SECONDS",
        "max_run_attempts": "ZENCOURT_MAX_RUN_ATTEMPTS",
        "health_cache_seconds": "ZENCOURT_HEALTH_CACHE_SECONDS",
        "storage_health_cache_ms": "STORAGE_HEALTH_CACHE_MS",
        "dagster_home": "DAGSTER_HOME",
        "dagster_webserver_url": "DAGSTER_WEBSERVER_URL",
        "max_download_attempts": "ZENCOURT_MAX_DOWNLOAD_ATTEMPTS",
        "public_media_base_url": "PUBLIC_MEDIA_BASE_URL",
        "media_url_expires_seconds": "MEDIA_URL_EXPIRES_SECONDS",
        "events_poll_seconds": "ZENCOURT_EVENTS_POLL_SECONDS",
        "events_heartbeat_seconds": "ZENCOURT_EVENTS_HEARTBEAT_SECONDS",
        "partition_retention_days": "ZENCOURT_PARTITION_RETENTION_DAYS",
        "executor": "ZENCOURT_EXECUTOR",
        "celery_broker_url": "ZENCOURT_CELERY_BROKER_URL",
    }
    # how a variable's text becomes the field's value where pydantic's own parsing differs
    _PARSE: ClassVar[dict[str, Any]] = {
        "data_dir": lambda text: Path(text).resolve(),
        "generation_providers": _csv,
        "media_allowed_private_hosts": _csv,
        "enable_final_composition": _flag,
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, strict: bool = True) -> Settings:
        """The settings of `env` (the process environment when None); an empty variable is unset.
        `strict=False` gives every invalid variable its default instead of raising (logging must
        work with a broken configuration)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, name in cls.ENV.items():
            text = env.get(name)
            if text not in (None, ""):
                values[field] = cls._PARSE.get(field, str)(text)
        try:
            return cls(**values)
        except ValidationError as exc:
            if strict:
                raise
            invalid = {error["loc"][0] for error in exc.errors() if error["loc"]}
            return cls(**{field: value for field, value in values.items() if field not in invalid})

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'zencourt.db'}"

    @property
    def storage_health_cache_seconds(self) -> float:
        """How long `/health` reuses a successful storage probe (STORAGE_HEALTH_CACHE_MS, else
        ZENCOURT_HEALTH_CACHE_SECONDS)."""
        if self.storage_health_cache_ms is None:
            return self.health_cache_seconds
        return self.storage_health_cache_ms / 1000

    @property
    def local_storage_root(self) -> Path:
        return self.data_dir / "storage"

    @property
    def resolved_fal_webhook_url(self) -> str:
        return self.fal_webhook_url or f"{self.video_server_url.rstrip('/')}/webhooks/fal"

    @property
    def generation_pool(self) -> str:
        """The concurrency pool of the provider-facing steps (clip_tasks, generated_clips)."""
        return pool_name(self.generation_providers[0])

    def secret_values(self) -> list[str]:
        """Values that must never appear in logs."""
        candidates = [
            self.b2_application_key,
            self.runway_api_key,
            self.fal_key,
            self.video_server_api_key,
            self.vercel_webhook_secret,
        ]
        return [value for value in candidates if value]


def pool_name(primary_provider: str) -> str:
    """Provider-facing steps share a concurrency pool named after the primary provider:
    `runway_api`, `fal_api` or `local_api`."""
    return f"{primary_provider}_api"


def setting_default(name: str) -> Any:
    """The embedded default of the `Settings` field `name`. Defaults live in `Settings` only: the
    resources' fields (defs/resources.py) take theirs from here."""
    return Settings.model_fields[name].get_default(call_default_factory=True)


class BenchSettings(BaseModel):
    """The benchmark tool's knobs (`make bench`, `python -m zencourt_pipeline.bench`): a developer
    tool's, not the deployment's, so they are not part of `Settings` and its documentation."""

    quick: bool = False
    work_dir: str | None = None
    postgres_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

    ENV: ClassVar[dict[str, str]] = {
        "quick": "ZENCOURT_BENCH_QUICK",
        "work_dir": "ZENCOURT_BENCH_DIR",
        "postgres_url": "ZENCOURT_BENCH_POSTGRES_URL",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BenchSettings:
        """The bench settings of `env` (the process environment when None); empty = unset."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {field: env[name] for field, name in cls.ENV.items() if env.get(name)}
        if "quick" in values:
            values["quick"] = values["quick"] != "0"
        return cls(**values)
