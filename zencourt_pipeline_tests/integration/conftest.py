"""A generation stack on loopback: fake Runway, fake fal, our HTTP service (receiving fal's
signed webhooks), a SQLite app database and a temporary Dagster instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.definitions import build_definitions
from zencourt_pipeline.defs.runs import make_canceller
from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos
from zencourt_pipeline_tests.fakes.fal import FakeFal
from zencourt_pipeline_tests.fakes.runway import FakeRunway
from zencourt_pipeline_tests.fakes.server import ServerThread

API_KEY = "integration-api-key"


@dataclass
class Stack:
    settings: Settings
    defs: dg.Definitions
    db: AppDatabase
    instance: dg.DagsterInstance
    runway: FakeRunway
    fal: FakeFal
    service_url: str
    tmp_path: Path

    def insert_batch(self, batch_id: str, n: int, **fields) -> list[dict]:
        storage = self.defs.resources["storage"].get()
        jobs = insert_batch_with_photos(self.db, storage, self.tmp_path, batch_id, [None] * n, **fields)
        return jobs

    def drive(self, batch_id: str, timeout: float = 120) -> str:
        from zencourt_pipeline.demo import drive_batch

        return drive_batch(self.defs, self.instance, batch_id, timeout=timeout, out=lambda *_: None, idle_sleep=0.3)

    def run(self, selection, batch_id, run_config=None):
        from zencourt_pipeline.defs.assets import pipeline_assets

        if not self.instance.has_dynamic_partition("batches", batch_id):
            self.instance.add_dynamic_partitions("batches", [batch_id])
        return dg.materialize(
            pipeline_assets,
            selection=selection,
            partition_key=batch_id,
            instance=self.instance,
            resources=self.defs.resources,
            run_config=run_config,
            raise_on_error=False,
        )

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(self.service_url + path, json=body, headers={"x-api-key": API_KEY}, timeout=30)


def build_stack(tmp_path: Path, providers: str, *, fal_overdue_seconds: float = 120.0):
    runway, fal = FakeRunway(latency=0.05), FakeFal()
    runway.start()
    fal.start()
    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    db = AppDatabase.connect(db_url)
    db.db.upgrade()
    holder: dict = {}
    service_app = create_app(
        Settings(data_dir=tmp_path / "data", database_url=db_url, video_server_api_key=API_KEY, fal_jwks_url=fal.jwks_url),
        db=db,
        verifier=FalWebhookVerifier(fal.jwks_url),
        canceller=lambda jobs, batches: holder["canceller"](jobs, batches),
    )
    service = ServerThread(service_app).start()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        generation_providers=providers.split(","),
        runway_api_key=runway.api_key,
        runway_api_url=runway.url,
        fal_key=fal.key,
        fal_queue_url=fal.url,
        fal_webhook_url=service.url + "/webhooks/fal",
        fal_jwks_url=fal.jwks_url,
        fal_webhook_overdue_seconds=fal_overdue_seconds,
        media_allowed_private_hosts=["127.0.0.1"],  # the fakes (and their output URLs) are on loopback
    )
    defs = build_definitions(settings)
    instance_cm = dg.instance_for_test()
    instance = instance_cm.__enter__()
    holder["canceller"] = make_canceller(db, lambda: defs.resources["generators"].chain(db), lambda: instance)
    stack = Stack(settings, defs, db, instance, runway, fal, service.url, tmp_path)

    def close():
        instance_cm.__exit__(None, None, None)
        service.stop()
        fal.stop()
        runway.stop()

    return stack, close


@pytest.fixture
def make_stack(tmp_path: Path):
    closers = []

    def factory(providers: str = "runway,fal", **kwargs) -> Stack:
        stack, close = build_stack(tmp_path, providers, **kwargs)
        closers.append(close)
        return stack

    yield factory
    for close in closers:
        close()
