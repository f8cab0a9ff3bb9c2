"""Migration 0013 (issue 14 point 4): the batch's narration URL, whether it names the agent, the
key of the checked copy intake stored, and a job's length timed to the narration; down and up again."""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision
from zencourt_pipeline_tests.conftest import make_batch

ADDED = {"narration_url", "narration_identifies_agent", "narration_key"}


def _columns(db, table: str = "video_gen_batch") -> set[str]:
    return {column["name"] for column in sa.inspect(db.db.engine).get_columns(table)}


def test_migration_0013_downgrades_and_upgrades_again(app_db):
    app_db.batches.insert_batch(*make_batch("m13", narration_url="https://voice.example.com/v.mp3", narration_identifies_agent=False))
    app_db.batches.insert_batch(*make_batch("m13b"))
    app_db.batches.set_narration_key("m13", "batches/m13/narration.mp3")
    batch, plain = app_db.batches.get_batch("m13"), app_db.batches.get_batch("m13b")
    assert (batch.narration_url, batch.narration_identifies_agent, batch.narration_key) == (
        "https://voice.example.com/v.mp3", False, "batches/m13/narration.mp3",
    )
    assert not batch.narration_names_agent and plain.narration_names_agent  # unset: it does (the MLS-safe side)
    app_db.batches.update_job("m13-0", timed_seconds=3.47)
    assert app_db.batches.get_job("m13-0").seconds == 3.47 and app_db.batches.get_job("m13-1").seconds == 5.0
    downgrade(app_db.db.engine, "0012")
    assert not ADDED & _columns(app_db) and "timed_seconds" not in _columns(app_db, "video_gen_jobs")
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and app_db.batches.get_batch("m13").narration_url is None
