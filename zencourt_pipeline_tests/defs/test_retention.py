"""Bounded partitions: the retention sensor removes the partitions of batches that ended more
than ZENCOURT_PARTITION_RETENTION_DAYS ago, a page per tick, and never an open or recent one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from zencourt_pipeline.db.schema import video_gen_batch
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, PipelineSettingsResource
from zencourt_pipeline.defs.retention import partition_retention_sensor, prune_request
from zencourt_pipeline_tests.conftest import make_batch

NOW = datetime.now(UTC)


def batch(db, instance, batch_id: str, *, ended_days_ago: float | None) -> None:
    """A batch with its partition; ended (completed) that many days ago, or still processing."""
    db.batches.insert_batch(*make_batch(batch_id, n_jobs=1))
    db.batches.start_batch(batch_id)
    if ended_days_ago is not None:
        db.batches.finish_batch(batch_id, "completed")
    with db.db.transaction() as conn:
        when = NOW - timedelta(days=ended_days_ago if ended_days_ago is not None else 90)
        conn.execute(sa.update(video_gen_batch).where(video_gen_batch.c.id == batch_id).values(updated_at=when))
    instance.add_dynamic_partitions(batch_partitions.name, [batch_id])


def tick(instance, url: str, days: int, cursor: str | None = None) -> dg.SensorResult:
    """One tick of the sensor, its partition requests applied as the daemon applies them."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "app_db": AppDatabaseResource(database_url=url),
            "pipeline_settings": PipelineSettingsResource(partition_retention_days=days),
        },
    )
    result = partition_retention_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.DeleteDynamicPartitionsRequest)
        for key in request.partition_keys:
            if instance.has_dynamic_partition(request.partitions_def_name, key):
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def partitions(instance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(batch_partitions.name))


def test_partitions_of_batches_ended_before_the_cutoff_go_and_the_rest_stay(instance, sqlite_db, sqlite_url):
    batch(sqlite_db, instance, "old-1", ended_days_ago=45)
    batch(sqlite_db, instance, "old-2", ended_days_ago=31)
    batch(sqlite_db, instance, "recent", ended_days_ago=29)
    batch(sqlite_db, instance, "open", ended_days_ago=None)  # processing since 90 days: never pruned
    result = tick(instance, sqlite_url, days=30)
    assert result.cursor is not None
    assert partitions(instance) == ["open", "recent"]
    assert sqlite_db.batches.get_batch("old-1").status == "completed"  # the app database keeps the batch

    again = tick(instance, sqlite_url, days=30, cursor=result.cursor)
    assert again.skip_reason and "no batch ended more than 30 days ago" in again.skip_reason.skip_message
    assert again.cursor is None and partitions(instance) == ["open", "recent"]


def test_a_page_per_tick_and_the_cursor_resumes(instance, sqlite_db, sqlite_url):
    for index in range(5):
        batch(sqlite_db, instance, f"p{index}", ended_days_ago=40 + index)
    first = prune_request(sqlite_db, 30, None, NOW, limit=2)
    assert first.dynamic_partitions_requests[0].partition_keys == ["p4", "p3"]  # the oldest first
    second = prune_request(sqlite_db, 30, first.cursor, NOW, limit=2)
    assert second.dynamic_partitions_requests[0].partition_keys == ["p2", "p1"]
    third = prune_request(sqlite_db, 30, second.cursor, NOW, limit=2)
    assert third.dynamic_partitions_requests[0].partition_keys == ["p0"]
    assert prune_request(sqlite_db, 30, third.cursor, NOW, limit=2).skip_reason


def test_retention_zero_keeps_every_partition(instance, sqlite_db, sqlite_url):
    batch(sqlite_db, instance, "kept", ended_days_ago=400)
    result = tick(instance, sqlite_url, days=0)
    assert "retention is off" in result.skip_reason.skip_message and partitions(instance) == ["kept"]


def test_the_sensor_is_registered_and_running_by_default():
    from zencourt_pipeline.definitions import defs

    sensor = defs().resolve_sensor_def("partition_retention_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 300 and sensor.description
