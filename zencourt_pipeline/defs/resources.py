"""Dagster resources over the external systems. They only configure: each holds its settings and
hands out the plain client it names (`get()`, `chain()`); nothing runs at import or in `get()`
beyond building that client (migrations are `zencourt db upgrade`'s and start-up's).

Implementations are chosen by type: one storage resource per backend, one configuration class per
provider; `build_resources(settings)` picks them. Defaults live in `config.Settings` only: a field
default here is `setting_default(<the Settings field>)`."""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr

from zencourt_pipeline.config import Settings, environment_has, setting_default
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.domain import Provider, StorageBackend
from zencourt_pipeline.net.fetch import FetchPolicy
from zencourt_pipeline.providers.base import Completion, CompletionSink, VideoGenerator
from zencourt_pipeline.providers.chain import ProviderChain, generator_class
from zencourt_pipeline.storage.base import Storage
from zencourt_pipeline.storage.local import LocalStorage

if TYPE_CHECKING:  # boto3 is imported when B2 storage is used, not with every run worker
    from zencourt_pipeline.storage.b2 import B2Storage

logger = logging.getLogger(__name__)

# how a secret reaches a resource: (value, env var name) -> the value or an EnvVar reference
Secret = Callable[[str | None, str], Any]


def setting(name: str, *, read: str | None = None, secret: bool = False, description: str | None = None) -> Any:
    """A field that defaults to the `Settings` field `name` and is configured from it (from `read`,
    a `Settings` property, when given) by `from_settings`; a `secret` reaches Dagster as an EnvVar
    reference. The field-to-setting pairing is written here once."""
    extra = {"setting": name, "read": read or name, "secret": secret}
    return Field(default=setting_default(name), description=description, json_schema_extra=extra)


def configured(model: type[dg.Config] | type[dg.ConfigurableResource], settings: Settings, secret: Secret) -> dict:
    """The values of `model`'s `setting(...)` fields, read from `settings`."""
    values = {}
    for field, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if "setting" in extra:
            value = getattr(settings, str(extra["read"]))
            values[field] = secret(value, Settings.ENV[str(extra["setting"])]) if extra["secret"] else value
    return values


def _close_all(clients: list, what: str) -> None:
    """Close every client; one that fails to close is logged, and the others are still closed."""
    for client in clients:
        try:
            client.close()
        except Exception:
            logger.warning(f"closing a {what} failed", exc_info=True)


@lru_cache(maxsize=8)
def _database(url: str) -> AppDatabase:
    """One engine (connection pool) per URL and process. It never migrates: `zencourt db upgrade`
    and the start-ups (`zencourt serve`, `zencourt demo`) bring the schema to the latest revision."""
    return AppDatabase.connect(url)


class AppDatabaseResource(dg.ConfigurableResource):
    """The application database (video_gen_batch, video_gen_jobs, ...): DATABASE_URL."""

    database_url: str

    def get(self) -> AppDatabase:
        """The application database for the configured URL (one shared instance per URL)."""
        return _database(self.database_url)


# -- storage: one resource per implementation ---------------------------------------------------
class StorageResource(dg.ConfigurableResource):
    """Where photos, clips and videos are published: what the assets ask for. One subclass per
    implementation, each handing out a `Storage`; `build_resources` picks it from STORAGE_BACKEND."""

    @abstractmethod
    def get(self) -> Storage:
        """The configured `Storage`."""

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings, secret: Secret) -> StorageResource:
        """The resource configured from `Settings` (secrets wrapped by `secret`)."""


class LocalStorageResource(StorageResource):
    """Files under a local root (STORAGE_BACKEND=local, the embedded default)."""

    root: str = Field(description="the storage root: <ZENCOURT_DATA_DIR>/storage")

    def get(self) -> LocalStorage:
        return LocalStorage(Path(self.root))

    @classmethod
    def from_settings(cls, settings: Settings, secret: Secret) -> LocalStorageResource:
        return cls(root=str(settings.local_storage_root))


class B2StorageResource(StorageResource):
    """Backblaze B2 through its S3 API (STORAGE_BACKEND=b2): B2_ENDPOINT, B2_KEY_ID, ..."""

    endpoint: str | None = setting("b2_endpoint")
    key_id: str | None = setting("b2_key_id")
    application_key: str | None = setting("b2_application_key", secret=True)
    bucket_name: str | None = setting("b2_bucket_name")
    region: str = setting("b2_region")
    timeout_seconds: float = Field(default=60.0, description="connect/read timeout of storage calls")

    # the clients handed out during an execution (a run's steps): closed at its teardown
    _open_storages: list[B2Storage] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._open_storages = []

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        storages, self._open_storages = self._open_storages or [], None
        _close_all(storages, "B2 client")

    def get(self) -> B2Storage:
        from zencourt_pipeline.storage.b2 import B2Storage

        storage = B2Storage(
            endpoint=self.endpoint,
            key_id=self.key_id,
            application_key=self.application_key,
            bucket=self.bucket_name,
            region=self.region,
            timeout_seconds=self.timeout_seconds,
        )
        if self._open_storages is not None:  # outside an execution the caller owns it
            self._open_storages.append(storage)
        return storage

    @classmethod
    def from_settings(cls, settings: Settings, secret: Secret) -> B2StorageResource:
        return cls(**configured(cls, settings, secret))


STORAGE_RESOURCES: dict[StorageBackend, type[StorageResource]] = {
    StorageBackend.LOCAL: LocalStorageResource,
    StorageBackend.B2: B2StorageResource,
}


# -- generators: one configuration class per provider, the chain in the configured order ----------
# Nested `dg.Config`, not nested resources: Dagster 1.13 warns (its own InitResourceContext.dagster_run
# deprecation, from replace_config) at every initialization of a resource with nested resources, and
# nested config takes defaults and EnvVar references the same way.
class GeneratorConfig(dg.Config):
    """One video provider's configuration: `PROVIDER` names its entry of the registry
    (`domain.PROVIDERS`, whose client class `generator(sink)` builds); its `setting(...)` fields
    are configured from `Settings`."""

    PROVIDER: ClassVar[Provider]

    @abstractmethod
    def client_arguments(self, sink: CompletionSink) -> dict[str, Any]:
        """The keyword arguments of this provider's client, completions going to `sink`."""

    def generator(self, sink: CompletionSink) -> VideoGenerator:
        """This provider's client, built from the registry's class and `client_arguments`."""
        return generator_class(self.PROVIDER)(**self.client_arguments(sink))

    @classmethod
    def from_settings(cls, settings: Settings, secret: Secret) -> GeneratorConfig:
        """The provider's configuration from `Settings` (secrets wrapped by `secret`)."""
        return cls(**configured(cls, settings, secret))


class LocalGeneratorConfig(GeneratorConfig):
    """The offline `local` generator (Ken Burns motion from the photo)."""

    PROVIDER = Provider.LOCAL
    output_dir: str = Field(default="", description="where its clips are rendered: <ZENCOURT_DATA_DIR>/local-generator")

    def client_arguments(self, sink: CompletionSink) -> dict[str, Any]:
        return {"output_dir": Path(self.output_dir), "sink": sink}

    @classmethod
    def from_settings(cls, settings: Settings, secret: Secret) -> LocalGeneratorConfig:
        return cls(output_dir=str(settings.data_dir / "local-generator"))


class HttpGeneratorConfig(GeneratorConfig):
    """What the HTTP providers share: the timeout of each call and the private hosts their
    output downloads may reach (MEDIA_ALLOWED_PRIVATE_HOSTS)."""

    request_timeout_seconds: float = Field(default=30.0, description="timeout of each provider HTTP call")
    allowed_private_hosts: list[str] = setting("media_allowed_private_hosts")

    def _http(self) -> dict[str, Any]:
        return {"timeout": self.request_timeout_seconds, "allowed_private_hosts": self.allowed_private_hosts}


class RunwayConfig(HttpGeneratorConfig):
    """Runway (`runway`): RUNWAY_API_KEY, RUNWAY_API_URL, RUNWAY_API_VERSION, RUNWAY_MODEL."""

    PROVIDER = Provider.RUNWAY
    api_key: str | None = setting("runway_api_key", secret=True)
    api_url: str = setting("runway_api_url")
    api_version: str = setting("runway_api_version")
    model: str = setting("runway_model")

    def client_arguments(self, sink: CompletionSink) -> dict[str, Any]:
        return {
            "api_key": self.api_key or "", "base_url": self.api_url, "api_version": self.api_version,
            "model": self.model, **self._http(),
        }  # fmt: skip


class FalConfig(HttpGeneratorConfig):
    """fal.ai's queue API (`fal`): FAL_KEY, FAL_QUEUE_URL, FAL_MODEL, FAL_WEBHOOK_URL."""

    PROVIDER = Provider.FAL
    key: str | None = setting("fal_key", secret=True)
    queue_url: str = setting("fal_queue_url")
    model: str = setting("fal_model")
    webhook_url: str | None = setting("fal_webhook_url", read="resolved_fal_webhook_url")
    webhook_overdue_seconds: float = setting(
        "fal_webhook_overdue_seconds",
        description="poll a fal request whose webhook has not arrived after this long (FAL_WEBHOOK_OVERDUE_SECONDS)",
    )

    def client_arguments(self, sink: CompletionSink) -> dict[str, Any]:
        return {
            "key": self.key or "", "queue_url": self.queue_url, "model": self.model,
            "webhook_url": self.webhook_url, **self._http(),
        }  # fmt: skip


# each provider of the registry and its configuration class
PROVIDER_CONFIGS: dict[Provider, type[GeneratorConfig]] = {
    config.PROVIDER: config for config in (RunwayConfig, FalConfig, LocalGeneratorConfig)
}


class GeneratorsResource(dg.ConfigurableResource):
    """The ordered video generators (GENERATION_PROVIDERS): each provider configured by its own
    class, the chain built from them in the configured order."""

    providers: list[str] = setting("generation_providers")
    runway: RunwayConfig = RunwayConfig()
    fal: FalConfig = FalConfig()
    local: LocalGeneratorConfig = LocalGeneratorConfig()
    allowed_private_hosts: list[str] = setting("media_allowed_private_hosts")
    provider_rates: dict[str, Any] | None = setting(
        "provider_rates", description="overrides of the task cost rate table (ZENCOURT_PROVIDER_RATES)"
    )

    # the chains handed out during an execution (a run's steps, a sensor tick): closed at its teardown
    _open_chains: list[ProviderChain] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._open_chains = []

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        chains, self._open_chains = self._open_chains or [], None
        _close_all(chains, "provider chain")

    def provider(self, name: str) -> GeneratorConfig:
        """The configuration of provider `name` (its field is named after it)."""
        return getattr(self, Provider(name).value)

    def webhook_overdue_after(self) -> dict[str, timedelta]:
        """Per provider with webhooks, how long to wait for one before polling the task."""
        return {Provider.FAL: timedelta(seconds=self.fal.webhook_overdue_seconds)}

    def fetch_policy(self) -> FetchPolicy:
        """The download policy: public hosts only, plus the allowed private hosts."""
        return FetchPolicy.from_hosts(self.allowed_private_hosts)

    def chain(self, db: AppDatabase) -> ProviderChain:
        """The provider chain in configured order, each client recording its completions in `db`."""
        def sink(completion: Completion) -> bool:
            return db.completions.record_completion(
                provider=completion.provider,
                task_id=completion.task_id,
                status=completion.status.value,
                source=completion.source,
                output_url=completion.output_url,
                error_code=completion.error_code,
                error_message=completion.error_message,
                payload=completion.payload,
            )

        generators = {name: self.provider(name).generator(sink) for name in self.providers}
        chain = ProviderChain(generators, self.providers, self.provider_rates)
        if self._open_chains is not None:  # outside an execution the caller closes it (the canceller)
            self._open_chains.append(chain)
        return chain

    @classmethod
    def from_settings(cls, settings: Settings, secret: Secret) -> GeneratorsResource:
        """The resource with every provider's configuration, from `Settings`."""
        configs = {name.value: config.from_settings(settings, secret) for name, config in PROVIDER_CONFIGS.items()}
        return cls(**configured(cls, settings, secret), **configs)


class PipelineSettingsResource(dg.ConfigurableResource):
    """Pipeline switches: clip-first mode and the monthly clip quotas (0 = unlimited)."""

    enable_final_composition: bool = setting_default("enable_final_composition")
    monthly_clip_quota: int = Field(
        default=setting_default("monthly_clip_quota"),
        description="clips a listing may have generated per calendar month, UTC (ZENCOURT_MONTHLY_CLIP_QUOTA)",
    )
    workspace_monthly_clip_quota: int = Field(
        default=setting_default("workspace_monthly_clip_quota"),
        description="clips a workspace may have generated per calendar month, UTC (ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA)",
    )
    generation_deadline_seconds: float = Field(
        default=setting_default("generation_deadline_seconds"), description="ZENCOURT_GENERATION_DEADLINE_SECONDS"
    )
    composition_deadline_seconds: float = Field(
        default=setting_default("composition_deadline_seconds"), description="ZENCOURT_COMPOSITION_DEADLINE_SECONDS"
    )
    max_run_attempts: int = Field(
        default=setting_default("max_run_attempts"),
        description="attempts of a failed intake or compose run (ZENCOURT_MAX_RUN_ATTEMPTS)",
    )
    max_download_attempts: int = Field(
        default=setting_default("max_download_attempts"),
        description="downloads of a finished task's output before its job fails (ZENCOURT_MAX_DOWNLOAD_ATTEMPTS)",
    )
    partition_retention_days: int = Field(
        default=setting_default("partition_retention_days"),
        description="days after its end a batch keeps its partition; 0 keeps all (ZENCOURT_PARTITION_RETENTION_DAYS)",
    )

    def deadlines(self):
        """The generation and composition deadlines and the run attempt limit, for the liveness watchdog."""
        from zencourt_pipeline.pipeline.liveness import Deadlines

        return Deadlines(
            generation=timedelta(seconds=self.generation_deadline_seconds),
            composition=timedelta(seconds=self.composition_deadline_seconds),
            max_attempts=self.max_run_attempts,
        )

    def quota_limits(self):
        """The monthly clip quotas every provider submission (first, fallback, regeneration) reserves against."""
        from zencourt_pipeline.pipeline.quota import QuotaLimits

        return QuotaLimits(self.monthly_clip_quota, self.workspace_monthly_clip_quota)

    @classmethod
    def from_settings(cls, settings: Settings, secret: Secret) -> PipelineSettingsResource:
        """The resource with each field taken from the setting of the same name."""
        return cls(**{name: getattr(settings, name) for name in cls.model_fields})  # each field is the setting


def _env_secret(value: str | None, env_name: str):
    """A secret from the environment reaches Dagster as an EnvVar reference (the UI shows the
    name, never the value); one passed in code (tests) is passed as it is."""
    if environment_has(env_name, value):
        return dg.EnvVar(env_name)
    return value


def build_resources(settings: Settings, *, env_refs: bool = True) -> dict[str, dg.ConfigurableResource]:
    """Every resource configured from `settings`; the storage class is the one STORAGE_BACKEND names.

    `env_refs`: secrets as EnvVar references (the code location: the UI shows names, never values);
    False outside a Dagster run (`zencourt serve`), where an EnvVar cannot be read as a value."""
    secret: Secret = _env_secret if env_refs else (lambda value, _name: value)
    return {
        "app_db": AppDatabaseResource(database_url=settings.resolved_database_url),
        "storage": STORAGE_RESOURCES[settings.storage_backend].from_settings(settings, secret),
        "generators": GeneratorsResource.from_settings(settings, secret),
        "pipeline_settings": PipelineSettingsResource.from_settings(settings, secret),
    }
