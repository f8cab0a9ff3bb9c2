"""Migration 0012 (issue 14 points 5 and 6): instructions and callback URL on the batch, a given
clip and its in/out points on the job, the outbox row's target URL; down and up again, on SQLite
and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision
from zencourt_pipeline_tests.conftest import make_batch

ADDED = {
    "video_gen_batch": {"instructions", "callback_url"},
    "video_gen_jobs": {"clip_url", "clip_in_seconds", "clip_out_seconds"},
    "webhook_outbox": {"target_url"},
}


def _columns(db, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(db.db.engine).get_columns(table)}


def test_migration_0012_downgrades_and_upgrades_again(app_db):
    batch, jobs = make_batch("m12", instructions="low and slow", callback_url="https://crm.example.com/h")
    jobs[0].update(clip_url="https://clips.example.com/a.mp4", clip_in_seconds=1.5, clip_out_seconds=4.0)
    jobs[1].update(clip_url=None, clip_in_seconds=None, clip_out_seconds=None)
    app_db.batches.insert_batch(batch, jobs)
    app_db.batches.fail_job("m12-1", "INVALID_INPUT", "x")
    assert [row.target_url for row in app_db.outbox.rows("m12")] == [None, "https://crm.example.com/h"]
    job = app_db.batches.get_job("m12-0")
    assert (job.clip_url, job.clip_in_seconds, job.clip_out_seconds, job.seconds) == (
        "https://clips.example.com/a.mp4", 1.5, 4.0, 2.5,
    )
    downgrade(app_db.db.engine, "0011")  # 0012 alone
    for table, added in ADDED.items():
        assert not added & _columns(app_db, table), table
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision()
    assert app_db.batches.get_batch("m12").instructions is None and app_db.batches.get_job("m12-0").clip_url is None
