"""Resources only configure (issue 12, item 4): implementations chosen by type, defaults from
`Settings` only, secrets from the environment as EnvVar references."""

from __future__ import annotations

import dagster as dg
import pytest

from zencourt_pipeline.config import PROVIDER_NAMES, Settings, setting_default
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.defs import resources as res
from zencourt_pipeline.providers.fal import FalGenerator
from zencourt_pipeline.providers.local import LocalGenerator
from zencourt_pipeline.providers.runway import RunwayGenerator
from zencourt_pipeline.storage.local import LocalStorage


def _settings(tmp_path, **values) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'app.db'}", **values)


def test_storage_backend_picks_the_storage_resource_class(tmp_path):
    local = res.build_resources(_settings(tmp_path))["storage"]
    assert type(local) is res.LocalStorageResource and local.root == str(tmp_path / "data" / "storage")
    assert isinstance(local.get(), LocalStorage)

    b2 = res.build_resources(
        _settings(
            tmp_path,
            storage_backend="b2",
            b2_endpoint="https://s3.example.test",
            b2_key_id="kid",
            b2_application_key="secret",
            b2_bucket_name="bkt",
            b2_region="eu-central-003",
        ),
        env_refs=False,
    )["storage"]
    assert type(b2) is res.B2StorageResource
    assert (b2.endpoint, b2.key_id, b2.application_key, b2.bucket_name, b2.region) == (
        "https://s3.example.test", "kid", "secret", "bkt", "eu-central-003"
    )
    assert set(res.STORAGE_RESOURCES) == {"local", "b2"}  # what STORAGE_BACKEND accepts
    for cls in res.STORAGE_RESOURCES.values():
        assert issubclass(cls, res.StorageResource)
    with pytest.raises(TypeError):
        res.StorageResource()  # the interface: only an implementation hands out a Storage


def test_one_class_per_provider_and_the_chain_in_the_configured_order(tmp_path):
    assert set(res.PROVIDER_CONFIGS) == set(PROVIDER_NAMES)
    settings = _settings(
        tmp_path, generation_providers=["fal", "runway", "local"], runway_api_key="rk", fal_key="fk",
        media_allowed_private_hosts=["10.0.0.7"],
    )
    generators = res.build_resources(settings, env_refs=False)["generators"]
    assert type(generators.runway) is res.RunwayConfig and type(generators.fal) is res.FalConfig
    assert generators.local.output_dir == str(tmp_path / "data" / "local-generator")
    assert generators.fal.webhook_url == "http://localhost:3001/webhooks/fal"
    db = AppDatabase.connect(settings.resolved_database_url)
    chain = generators.chain(db)
    try:
        assert chain.order == ["fal", "runway", "local"]
        assert isinstance(chain.get("fal"), FalGenerator) and isinstance(chain.get("runway"), RunwayGenerator)
        assert isinstance(chain.get("local"), LocalGenerator)
        assert "10.0.0.7" in chain.get("runway").fetch_policy.allowed_private_hosts
    finally:
        chain.close()
        db.db.dispose()
    only_local = res.build_resources(_settings(tmp_path))["generators"].chain(db)
    assert only_local.order == ["local"] and list(only_local.generators) == ["local"]


def test_resource_defaults_are_the_settings_defaults():
    """One source of defaults: every resource field named after a setting defaults to it."""
    pairs = {
        res.B2StorageResource: {"endpoint": "b2_endpoint", "key_id": "b2_key_id", "application_key": "b2_application_key",
                                "bucket_name": "b2_bucket_name", "region": "b2_region"},
        res.RunwayConfig: {"api_key": "runway_api_key", "api_url": "runway_api_url", "api_version": "runway_api_version",
                             "model": "runway_model", "allowed_private_hosts": "media_allowed_private_hosts"},
        res.FalConfig: {"key": "fal_key", "queue_url": "fal_queue_url", "model": "fal_model",
                          "webhook_url": "fal_webhook_url", "webhook_overdue_seconds": "fal_webhook_overdue_seconds",
                          "allowed_private_hosts": "media_allowed_private_hosts"},
        res.GeneratorsResource: {"providers": "generation_providers", "allowed_private_hosts": "media_allowed_private_hosts"},
        res.PipelineSettingsResource: {name: name for name in res.PipelineSettingsResource.model_fields},
    }
    for cls, fields in pairs.items():
        for field, setting in fields.items():
            assert cls.model_fields[field].get_default(call_default_factory=True) == setting_default(setting), (cls, field)
    assert res.PipelineSettingsResource().max_download_attempts == Settings().max_download_attempts


def test_secrets_from_the_environment_reach_dagster_as_env_var_names(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNWAY_API_KEY", "rk-env")
    monkeypatch.setenv("B2_APPLICATION_KEY", "b2-env")
    settings = _settings(
        tmp_path, runway_api_key="rk-env", fal_key="fk-in-code", storage_backend="b2", b2_key_id="k",
        b2_application_key="b2-env", b2_bucket_name="bkt", b2_endpoint="https://s3.example.test",
    )
    built = res.build_resources(settings)
    assert isinstance(built["generators"].runway.api_key, dg.EnvVar)
    assert isinstance(built["storage"].application_key, dg.EnvVar)
    assert built["generators"].fal.key == "fk-in-code"  # passed in code: as it is
    plain = res.build_resources(settings, env_refs=False)
    assert not isinstance(plain["generators"].runway.api_key, dg.EnvVar)
    assert plain["generators"].runway.api_key == "rk-env"
    # inside an execution Dagster resolves the reference to the value
    with dg.build_resources({"generators": built["generators"]}) as resolved:
        assert resolved.generators.runway.api_key == "rk-env"


# -- clients closed after use ------------------------------------------------------------------
def test_chains_handed_out_in_an_execution_are_closed_at_its_teardown(tmp_path):
    settings = _settings(tmp_path, generation_providers=["runway", "fal", "local"], runway_api_key="rk", fal_key="fk")
    generators = res.build_resources(settings, env_refs=False)["generators"]
    db = AppDatabase.connect(settings.resolved_database_url)
    try:
        with dg.build_resources({"generators": generators}) as resources:
            chains = [resources.generators.chain(db), resources.generators.chain(db)]
            clients = [chain.get(name)._client for chain in chains for name in ("runway", "fal")]
            assert not any(client.is_closed for client in clients)
        assert all(client.is_closed for client in clients)
        # outside an execution nothing is kept: the caller closes what it asked for
        outside = generators.chain(db)
        assert generators._open_chains is None
        outside.close()
        assert outside.get("runway")._client.is_closed
    finally:
        db.db.dispose()


def test_b2_clients_handed_out_in_an_execution_are_closed_at_its_teardown(tmp_path, monkeypatch):
    from zencourt_pipeline.storage.b2 import B2Storage

    closed: list[B2Storage] = []
    monkeypatch.setattr(B2Storage, "close", lambda self: closed.append(self))
    storage = res.B2StorageResource(endpoint="https://s3.example.test", key_id="k", application_key="s", bucket_name="b")
    with dg.build_resources({"storage": storage}) as resources:
        handed_out = [resources.storage.get(), resources.storage.get()]
        assert closed == []
    assert closed == handed_out
    storage.get()  # outside an execution: the caller's
    assert closed == handed_out


def test_the_generation_runs_close_every_chain_they_open(instance, resources, tmp_path, monkeypatch):
    """clip_tasks and generated_clips ask `generators.chain(db)` for a chain: closed by the end of the run."""
    from zencourt_pipeline.defs.assets import pipeline_assets
    from zencourt_pipeline.providers.chain import ProviderChain
    from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos

    opened, closed = [], []
    original_init, original_close = ProviderChain.__init__, ProviderChain.close

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        opened.append(self)

    def close(self):
        closed.append(self)
        original_close(self)

    monkeypatch.setattr(ProviderChain, "__init__", init)
    monkeypatch.setattr(ProviderChain, "close", close)
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-close", [None])
    instance.add_dynamic_partitions("batches", ["b-close"])
    for selection in (["listing_photos", "clip_tasks"], ["generated_clips"]):
        result = dg.materialize(
            pipeline_assets, selection=selection, partition_key="b-close", instance=instance, resources=resources
        )
        assert result.success
    assert len(opened) == 2 and all(any(chain is c for c in closed) for chain in opened)
