"""Monthly clip quotas: per listing, per workspace; a batch over quota fails at intake, uncalled."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.schema import generation_tasks
from zencourt_pipeline.defs.assets import pipeline_assets
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.pipeline.intake import BatchRejected
from zencourt_pipeline.pipeline.quota import clips_used, enforce_quota, month_start, next_month_start
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos

INTAKE = ["listing_photos", "clip_tasks"]


def _paid(db, batch_id: str, job_id: str, task_id: str, submitted_at: datetime | None = None) -> None:
    row = db.ledger.begin_task(job_id, batch_id, "runway")
    db.ledger.task_submitted(row, job_id, "runway", task_id, cost=5.0)
    if submitted_at is not None:
        with db.db.transaction() as conn:
            conn.execute(sa.update(generation_tasks).where(generation_tasks.c.id == row).values(submitted_at=submitted_at))


def test_settings_read_the_quota_variables():
    settings = Settings.from_env(
        {"ZENCOURT_MONTHLY_CLIP_QUOTA": "30", "ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA": "500"}
    )
    assert (settings.monthly_clip_quota, settings.workspace_monthly_clip_quota) == (30, 500)
    assert Settings.from_env({}).monthly_clip_quota == 0  # unlimited


def test_only_this_months_accepted_tasks_count(sqlite_db):
    db = sqlite_db
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    db.batches.insert_batch(*make_batch("old", n_jobs=2, listing_id="L", workspace_id="W"))
    db.batches.insert_batch(*make_batch("new", n_jobs=3, listing_id="L", workspace_id="W"))
    db.batches.insert_batch(*make_batch("other", n_jobs=1, listing_id="M", workspace_id="W"))
    _paid(db, "old", "old-0", "t-old-0", month_start(now) - timedelta(seconds=1))  # February: not counted
    _paid(db, "old", "old-1", "t-old-1", month_start(now) - timedelta(days=3))
    for i in range(3):
        _paid(db, "new", f"new-{i}", f"t-new-{i}", now - timedelta(hours=i))
    _paid(db, "other", "other-0", "t-other-0", now)
    db.ledger.begin_task("new-0", "new", "fal")  # an intent the provider never accepted: not a clip
    since = month_start(now)
    assert clips_used(db.quota, since=since, listing_id="L") == 3
    assert clips_used(db.quota, since=since, workspace_id="W") == 4
    assert (month_start(now), next_month_start(now)) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert next_month_start(datetime(2026, 12, 31, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)

    batch = db.batches.get_batch("other")
    usages = enforce_quota(db.quota, batch, 2, listing_quota=3, workspace_quota=6, now=now)
    assert [(u.scope, u.used, u.requested) for u in usages] == [("listing", 1, 2), ("workspace", 4, 2)]
    with pytest.raises(BatchRejected) as refused:
        enforce_quota(db.quota, batch, 3, listing_quota=10, workspace_quota=6, now=now)
    assert refused.value.code == "QUOTA_EXCEEDED"
    assert refused.value.message == (
        "monthly clip quota exceeded: workspace W has used 4 of its 6 clips for 2026-03 (UTC); this batch needs 3 "
        "more. No clip was generated; the quota renews on 2026-04-01."
    )
    # no workspace on the batch: only the listing quota applies
    assert [u.scope for u in enforce_quota(db.quota, dataclasses.replace(db.batches.get_batch("new"), workspace_id=None), 0, listing_quota=3,
                                           workspace_quota=1, now=now)] == ["listing"]


def test_a_batch_over_the_listing_quota_fails_at_intake_without_a_provider_call(
    tmp_path, sqlite_url, instance, generator_calls
):
    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url, monthly_clip_quota=3)
    resources = build_resources(settings)
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "q-1", [None, None])
    insert_batch_with_photos(db, storage, tmp_path, "q-2", [None, None])  # same listing L-1
    instance.add_dynamic_partitions("batches", ["q-1", "q-2"])

    def intake(batch_id):
        return dg.materialize(
            pipeline_assets, selection=INTAKE, partition_key=batch_id, instance=instance, resources=resources,
            raise_on_error=False,
        )

    first = intake("q-1")
    assert first.success and sorted(generator_calls) == ["q-1-0", "q-1-1"]
    [photos] = [e.materialization for e in first.get_asset_materialization_events() if e.asset_key.path == ["listing_photos"]]
    assert photos.metadata["quota_listing"].value.startswith("0 + 2 of 3 clips in ")

    second = intake("q-2")
    assert not second.success
    assert sorted(generator_calls) == ["q-1-0", "q-1-1"]  # no provider call for q-2
    assert db.ledger.tasks_for_batch("q-2") == []
    [failure] = [e for e in second.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "listing_photos"
    message = failure.event_specific_data.error.message
    assert "batch rejected at intake: QUOTA_EXCEEDED: monthly clip quota exceeded: listing L-1 has used 2 of its 3" in message
    assert "this batch needs 2 more" in message
    batch = db.batches.get_batch("q-2")
    assert batch.status == "failed" and batch.error.startswith("QUOTA_EXCEEDED: ")
    assert {(job.status, job.error_code) for job in db.batches.get_jobs("q-2")} == {("failed", "QUOTA_EXCEEDED")}
    events = [json.loads(row.body)["event"] for row in db.outbox.rows("q-2")]
    assert events.count("clip.failed") == 2 and events[-1] == "batch.failed"

    # re-running the intake of the batch that was within quota never rejects it afterwards
    assert intake("q-1").success and db.batches.get_batch("q-1").status == "processing"
