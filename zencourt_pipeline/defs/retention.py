"""Bounded partitions: one dynamic partition per batch, removed once the batch ended long ago.

A partition per batch grows by every listing, forever; Dagster's UI and storage slow down badly
at tens of thousands of partitions per asset, which 1,000 batches a day pass within a month. The
batch's history stays in the application database (rows, URLs, spend, events) and its runs and
materializations stay in Dagster's event log: only the partition key goes, so the asset pages,
the partition selector and backfill dialogs list the batches an operator may still act on.

`partition_retention_sensor` pages through the terminal batches whose last change is older than
`ZENCOURT_PARTITION_RETENTION_DAYS` (0: keep every partition), oldest first, by the keyset cursor
`db.catalog.ended_batches` hands out, and asks the daemon to delete their partitions (it deletes those
that exist and skips the rest). Each tick reads one indexed page: its cost does not grow with
the number of batches or partitions. A batch re-opened later (regenerate) changes again, so it
comes again past the cursor once it ended for the retention period.

Recompose or regenerate of a pruned batch adds its partition back first: the HTTP actions do it
through the webserver (`service/launch.py`); in the UI, the launchpad's partition selector has
"Add partition" (docs/operations.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, PipelineSettingsResource

RETENTION_INTERVAL_SECONDS = 300
PARTITIONS_PRUNED_PER_TICK = 500  # 144,000 a day at one tick per 5 min; the daemon deletes one by one


def prune_request(
    db, retention_days: int, cursor: str | None, now: datetime, limit: int = PARTITIONS_PRUNED_PER_TICK
) -> dg.SensorResult:
    """The tick's answer: the delete request of the next page of batches ended before the
    retention cutoff, and the cursor after it; a skip when retention is off or nothing is due."""
    if retention_days <= 0:
        return dg.SensorResult(skip_reason="partition retention is off (ZENCOURT_PARTITION_RETENTION_DAYS=0)")
    keys, next_cursor = db.catalog.ended_batches(now - timedelta(days=retention_days), cursor, limit)
    if not keys:
        return dg.SensorResult(skip_reason=f"no batch ended more than {retention_days} days ago since the last tick")
    return dg.SensorResult(dynamic_partitions_requests=[batch_partitions.build_delete_request(keys)], cursor=next_cursor)


@dg.sensor(
    minimum_interval_seconds=RETENTION_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Removes the partitions of batches that ended more than ZENCOURT_PARTITION_RETENTION_DAYS ago "
        "(their history stays in the app database and the event log; recompose or regenerate adds the partition back)."
    ),
)
def partition_retention_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource, pipeline_settings: PipelineSettingsResource
) -> dg.SensorResult:
    """Delete the next page of expired batch partitions; the cursor remembers where the page ended."""
    return prune_request(app_db.get(), pipeline_settings.partition_retention_days, context.cursor, datetime.now(UTC))
