"""Migration 0013 (issue 14 point 4): the batch's narration URL, whether it names the agent, and the
key of the checked copy intake stored; down and up again."""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.migrate import current_revision, downgrade
from zencourt_pipeline_tests.conftest import make_batch

ADDED = {"narration_url", "narration_identifies_agent", "narration_key"}


def _columns(db) -> set[str]:
    return {column["name"] for column in sa.inspect(db.engine).get_columns("video_gen_batch")}


def test_migration_0013_downgrades_and_upgrades_again(app_db):
    app_db.insert_batch(*make_batch("m13", narration_url="https://voice.example.com/v.mp3", narration_identifies_agent=False))
    app_db.insert_batch(*make_batch("m13b"))
    app_db.set_narration_key("m13", "batches/m13/narration.mp3")
    batch, plain = app_db.get_batch("m13"), app_db.get_batch("m13b")
    assert (batch.narration_url, batch.narration_identifies_agent, batch.narration_key) == (
        "https://voice.example.com/v.mp3", False, "batches/m13/narration.mp3",
    )
    assert not batch.narration_names_agent and plain.narration_names_agent  # unset: it does (the MLS-safe side)
    downgrade(app_db.engine, "0012")
    assert not ADDED & _columns(app_db)
    app_db.upgrade()
    assert current_revision(app_db.engine) == "0013" and app_db.get_batch("m13").narration_url is None
