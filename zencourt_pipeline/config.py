"""Process configuration read from the environment (names fixed by docs/contract.md section 2).

Everything has an embedded default so that `zencourt demo` works with nothing set:
SQLite under the local data dir, local file storage, the offline `local` generator.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, Field, field_validator

PROVIDER_NAMES = ("runway", "fal", "local")


def default_data_dir() -> Path:
    """Where embedded state lives (SQLite db, local storage, Dagster home)."""
    return Path(os.environ.get("ZENCOURT_DATA_DIR", Path.cwd() / ".zencourt")).resolve()


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def parse_provider_rates(raw: str | None) -> dict[str, Any] | None:
    """ZENCOURT_PROVIDER_RATES: a JSON object shaped like `providers.rates.DEFAULT_RATES`."""
    if not raw:
        return None
    from zencourt_pipeline.providers.rates import validate_rates

    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"ZENCOURT_PROVIDER_RATES is not JSON: {exc}") from exc
    return validate_rates(value)


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

    vercel_api_url: str | None = None
    vercel_webhook_secret: str | None = None
    vercel_webhook_path: str = "/api/webhooks/video-server"

    enable_final_composition: bool = True
    media_allowed_private_hosts: list[str] = Field(default_factory=list)
    log_level: str = "info"

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

    @field_validator("generation_providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in PROVIDER_NAMES]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; expected some of {PROVIDER_NAMES}")
        if not value:
            raise ValueError("GENERATION_PROVIDERS must name at least one provider")
        return value

    @field_validator("provider_rates")
    @classmethod
    def _rates_shape(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from zencourt_pipeline.providers.rates import validate_rates

        return None if value is None else validate_rates(value)

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
        if value not in ("local", "b2"):
            raise ValueError("STORAGE_BACKEND must be 'local' or 'b2'")
        return value

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        values: dict = {
            "database_url": get("DATABASE_URL"),
            "storage_backend": get("STORAGE_BACKEND") or "local",
            "b2_endpoint": get("B2_ENDPOINT"),
            "b2_key_id": get("B2_KEY_ID"),
            "b2_application_key": get("B2_APPLICATION_KEY"),
            "b2_bucket_name": get("B2_BUCKET_NAME"),
            "runway_api_key": get("RUNWAY_API_KEY"),
            "fal_key": get("FAL_KEY"),
            "fal_webhook_url": get("FAL_WEBHOOK_URL"),
            "video_server_api_key": get("VIDEO_SERVER_API_KEY"),
            "vercel_api_url": get("VERCEL_API_URL"),
            "vercel_webhook_secret": get("VERCEL_WEBHOOK_SECRET"),
            "media_allowed_private_hosts": _csv(get("MEDIA_ALLOWED_PRIVATE_HOSTS")),
            "provider_rates": parse_provider_rates(get("ZENCOURT_PROVIDER_RATES")),
            "public_media_base_url": get("PUBLIC_MEDIA_BASE_URL"),
        }
        optional = {
            "b2_region": "B2_REGION",
            "runway_api_url": "RUNWAY_API_URL",
            "runway_api_version": "RUNWAY_API_VERSION",
            "runway_model": "RUNWAY_MODEL",
            "fal_queue_url": "FAL_QUEUE_URL",
            "fal_model": "FAL_MODEL",
            "fal_jwks_url": "FAL_JWKS_URL",
            "fal_webhook_overdue_seconds": "FAL_WEBHOOK_OVERDUE_SECONDS",
            "video_server_url": "VIDEO_SERVER_URL",
            "port": "PORT",
            "vercel_webhook_path": "VERCEL_WEBHOOK_PATH",
            "log_level": "LOG_LEVEL",
            "monthly_clip_quota": "ZENCOURT_MONTHLY_CLIP_QUOTA",
            "workspace_monthly_clip_quota": "ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA",
            "generation_deadline_seconds": "ZENCOURT_GENERATION_DEADLINE_SECONDS",
            "composition_deadline_seconds": "ZENCOURT_COMPOSITION_DEADLINE_SECONDS",
            "max_run_attempts": "ZENCOURT_MAX_RUN_ATTEMPTS",
            "health_cache_seconds": "ZENCOURT_HEALTH_CACHE_SECONDS",
            "storage_health_cache_ms": "STORAGE_HEALTH_CACHE_MS",
            "dagster_home": "DAGSTER_HOME",
            "max_download_attempts": "ZENCOURT_MAX_DOWNLOAD_ATTEMPTS",
            "media_url_expires_seconds": "MEDIA_URL_EXPIRES_SECONDS",
        }
        for field, name in optional.items():
            if get(name) is not None:
                values[field] = get(name)
        if get("GENERATION_PROVIDERS"):
            values["generation_providers"] = _csv(get("GENERATION_PROVIDERS"))
        if get("ENABLE_FINAL_COMPOSITION"):
            values["enable_final_composition"] = get("ENABLE_FINAL_COMPOSITION").lower() not in (
                "0",
                "false",
                "no",
                "off",
            )
        if get("ZENCOURT_DATA_DIR"):
            values["data_dir"] = Path(get("ZENCOURT_DATA_DIR")).resolve()
        return cls(**values)

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
