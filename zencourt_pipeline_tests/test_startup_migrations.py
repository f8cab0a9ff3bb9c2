"""Migrations belong to `zencourt db upgrade` and to start-up, never to a resource: a resource's
`get()` hands out the database client as it is, and every command that starts the system on a
possibly fresh database (`zencourt serve`, `zencourt demo`) upgrades it first."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.migrate import current_revision


def _revision(url: str) -> str | None:
    db = AppDatabase.connect(url)
    try:
        return current_revision(db.db.engine)
    finally:
        db.db.dispose()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from zencourt_pipeline.db.migrate import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


@pytest.fixture
def fresh_env(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(tmp_path / "data"))
    for name in ("GENERATION_PROVIDERS", "STORAGE_BACKEND", "VERCEL_API_URL", "VERCEL_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return url


def test_the_database_resource_hands_out_the_client_without_migrating(tmp_path):
    from zencourt_pipeline.defs.resources import AppDatabaseResource

    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    db = AppDatabaseResource(database_url=url).get()
    assert current_revision(db.db.engine) is None
    assert sa.inspect(db.db.engine).get_table_names() == []


def test_zencourt_db_upgrade_brings_a_fresh_database_to_head(fresh_env, capsys):
    from zencourt_pipeline.cli import main

    assert main(["db", "upgrade"]) == 0
    assert _revision(fresh_env) == _head()
    assert _head() in capsys.readouterr().out


def test_zencourt_serve_upgrades_the_database_before_serving(fresh_env, monkeypatch):
    from zencourt_pipeline import cli
    from zencourt_pipeline.notify import deliverer
    from zencourt_pipeline.service import server

    seen: dict[str, str | None] = {}

    def serve(settings, *, db, canceller, **_):  # instead of uvicorn: what the service starts on
        seen["revision"] = current_revision(db.db.engine)

    monkeypatch.setattr(server, "serve", serve)
    monkeypatch.setattr(deliverer.OutboxDeliverer, "start", lambda self, stop: None)
    monkeypatch.setattr("zencourt_pipeline.observability.logging.configure_logging", lambda *a, **k: None)
    assert cli.main(["serve"]) == 0
    assert seen["revision"] == _head()


def test_zencourt_demo_upgrades_a_fresh_database_before_inserting_the_sample(fresh_env, monkeypatch, tmp_path):
    from zencourt_pipeline import demo
    from zencourt_pipeline.config import Settings

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setattr(demo, "drive_batch", lambda *args, **kwargs: "pending")  # no runs: start-up only
    result = demo.run_demo(Settings.from_env(), timeout=60, out=lambda *_: None)
    assert _revision(fresh_env) == _head()
    db = AppDatabase.connect(fresh_env)
    try:
        assert db.batches.get_batch(result.batch_id).status == "pending"
    finally:
        db.db.dispose()
