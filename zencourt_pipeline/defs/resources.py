"""Dagster resources over the external systems. Thin: each builds the plain client it names."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import dagster as dg
from pydantic import Field

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.net.fetch import FetchPolicy
from zencourt_pipeline.providers.base import Completion
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline.storage.base import Storage


@lru_cache(maxsize=8)
def _database(url: str) -> AppDatabase:
    """One engine (connection pool) per URL and process. It never migrates: `zencourt db upgrade`
    and the start-ups (`zencourt serve`, `zencourt demo`) bring the schema to the latest revision."""
    return AppDatabase(url)


class AppDatabaseResource(dg.ConfigurableResource):
    """The application database (video_gen_batch, video_gen_jobs, ...): DATABASE_URL."""

    database_url: str

    def get(self) -> AppDatabase:
        return _database(self.database_url)


class StorageResource(dg.ConfigurableResource):
    """Where photos, clips and videos are published: local files or B2 (STORAGE_BACKEND)."""

    backend: str = "local"
    local_root: str = ""
    b2_endpoint: str | None = None
    b2_key_id: str | None = None
    b2_application_key: str | None = None
    b2_bucket_name: str | None = None
    b2_region: str = "us-west-002"
    timeout_seconds: float = Field(default=60.0, description="connect/read timeout of storage calls")

    def get(self) -> Storage:
        if self.backend == "b2":
            from zencourt_pipeline.storage.b2 import B2Storage

            return B2Storage(
                endpoint=self.b2_endpoint,
                key_id=self.b2_key_id,
                application_key=self.b2_application_key,
                bucket=self.b2_bucket_name,
                region=self.b2_region,
                timeout_seconds=self.timeout_seconds,
            )
        from zencourt_pipeline.storage.local import LocalStorage

        return LocalStorage(Path(self.local_root))


class GeneratorsResource(dg.ConfigurableResource):
    """The ordered video generators (GENERATION_PROVIDERS) and their credentials."""

    providers: list[str] = ["local"]
    local_output_dir: str = ""
    runway_api_key: str | None = None
    runway_api_url: str = "https://api.dev.runwayml.com"
    runway_api_version: str = "2024-11-06"
    runway_model: str = "gen4_turbo"
    fal_key: str | None = None
    fal_queue_url: str = "https://queue.fal.run"
    fal_model: str = "fal-ai/kling-video/v2.1/standard/image-to-video"
    fal_webhook_url: str | None = None
    request_timeout_seconds: float = Field(default=30.0, description="timeout of each provider HTTP call")
    fal_webhook_overdue_seconds: float = Field(
        default=120.0, description="poll a fal request whose webhook has not arrived after this long"
    )
    allowed_private_hosts: list[str] = []

    def webhook_overdue_after(self) -> dict[str, timedelta]:
        return {"fal": timedelta(seconds=self.fal_webhook_overdue_seconds)}

    @property
    def primary_pool(self) -> str:
        """The concurrency pool of provider-facing steps: named after the primary provider."""
        return f"{self.providers[0]}_api"

    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy.from_hosts(self.allowed_private_hosts)

    def chain(self, db: AppDatabase) -> ProviderChain:
        def sink(completion: Completion) -> bool:
            return db.record_completion(
                provider=completion.provider,
                task_id=completion.task_id,
                status=completion.status.value,
                source=completion.source,
                output_url=completion.output_url,
                error_code=completion.error_code,
                error_message=completion.error_message,
                payload=completion.payload,
            )

        generators = {}
        for name in self.providers:
            if name == "local":
                from zencourt_pipeline.providers.local import LocalGenerator

                generators[name] = LocalGenerator(Path(self.local_output_dir), sink=sink)
            elif name == "runway":
                from zencourt_pipeline.providers.runway import RunwayGenerator

                generators[name] = RunwayGenerator(
                    api_key=self.runway_api_key or "",
                    base_url=self.runway_api_url,
                    api_version=self.runway_api_version,
                    model=self.runway_model,
                    timeout=self.request_timeout_seconds,
                    allowed_private_hosts=self.allowed_private_hosts,
                )
            elif name == "fal":
                from zencourt_pipeline.providers.fal import FalGenerator

                generators[name] = FalGenerator(
                    key=self.fal_key or "",
                    queue_url=self.fal_queue_url,
                    model=self.fal_model,
                    webhook_url=self.fal_webhook_url,
                    timeout=self.request_timeout_seconds,
                    allowed_private_hosts=self.allowed_private_hosts,
                )
        return ProviderChain(generators, self.providers)


class PipelineSettingsResource(dg.ConfigurableResource):
    """Pipeline switches: clip-first mode and the monthly clip quotas (0 = unlimited)."""

    enable_final_composition: bool = True
    monthly_clip_quota: int = Field(
        default=0, description="clips a listing may have generated per calendar month, UTC (ZENCOURT_MONTHLY_CLIP_QUOTA)"
    )
    workspace_monthly_clip_quota: int = Field(
        default=0,
        description="clips a workspace may have generated per calendar month, UTC (ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA)",
    )
    generation_deadline_seconds: float = Field(default=7200.0, description="ZENCOURT_GENERATION_DEADLINE_SECONDS")
    composition_deadline_seconds: float = Field(default=1800.0, description="ZENCOURT_COMPOSITION_DEADLINE_SECONDS")
    max_run_attempts: int = Field(default=3, description="attempts of a failed intake or compose run (ZENCOURT_MAX_RUN_ATTEMPTS)")
    max_download_attempts: int = Field(
        default=5, description="downloads of a finished task's output before its job fails (ZENCOURT_MAX_DOWNLOAD_ATTEMPTS)"
    )

    def deadlines(self):
        from zencourt_pipeline.pipeline.liveness import Deadlines

        return Deadlines(
            generation=timedelta(seconds=self.generation_deadline_seconds),
            composition=timedelta(seconds=self.composition_deadline_seconds),
            max_attempts=self.max_run_attempts,
        )


def _env_secret(value: str | None, env_name: str):
    """A secret from the environment reaches Dagster as an EnvVar reference (the UI shows the
    name, never the value); one passed in code (tests) is passed as it is."""
    if value and os.environ.get(env_name) == value:
        return dg.EnvVar(env_name)
    return value


def build_resources(settings: Settings, *, env_refs: bool = True) -> dict[str, dg.ConfigurableResource]:
    """`env_refs`: secrets as EnvVar references (the code location: the UI shows names, never values);
    False outside a Dagster run (`zencourt serve`), where an EnvVar cannot be read as a value."""
    _secret = _env_secret if env_refs else (lambda value, _name: value)
    return {
        "app_db": AppDatabaseResource(database_url=settings.resolved_database_url),
        "storage": StorageResource(
            backend=settings.storage_backend,
            local_root=str(settings.local_storage_root),
            b2_endpoint=settings.b2_endpoint,
            b2_key_id=settings.b2_key_id,
            b2_application_key=_secret(settings.b2_application_key, "B2_APPLICATION_KEY"),
            b2_bucket_name=settings.b2_bucket_name,
            b2_region=settings.b2_region,
        ),
        "generators": GeneratorsResource(
            providers=settings.generation_providers,
            local_output_dir=str(settings.data_dir / "local-generator"),
            runway_api_key=_secret(settings.runway_api_key, "RUNWAY_API_KEY"),
            runway_api_url=settings.runway_api_url,
            runway_api_version=settings.runway_api_version,
            runway_model=settings.runway_model,
            fal_key=_secret(settings.fal_key, "FAL_KEY"),
            fal_queue_url=settings.fal_queue_url,
            fal_model=settings.fal_model,
            fal_webhook_url=settings.resolved_fal_webhook_url,
            fal_webhook_overdue_seconds=settings.fal_webhook_overdue_seconds,
            allowed_private_hosts=settings.media_allowed_private_hosts,
        ),
        "pipeline_settings": PipelineSettingsResource(
            enable_final_composition=settings.enable_final_composition,
            monthly_clip_quota=settings.monthly_clip_quota,
            workspace_monthly_clip_quota=settings.workspace_monthly_clip_quota,
            generation_deadline_seconds=settings.generation_deadline_seconds,
            composition_deadline_seconds=settings.composition_deadline_seconds,
            max_run_attempts=settings.max_run_attempts,
            max_download_attempts=settings.max_download_attempts,
        ),
    }
