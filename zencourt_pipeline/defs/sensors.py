"""Sensors: new batches -> intake runs; provider polls -> completions; completions -> compose runs.

Both are cheap per tick (a few indexed queries, capped rows) and idempotent: the database
claim and the run keys make sure each batch state produces one run, whatever the tick count.
"""

from __future__ import annotations

import dagster as dg

from zencourt_pipeline.defs.jobs import batch_compose_job, batch_intake_job
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, GeneratorsResource
from zencourt_pipeline.pipeline.generation import generation_state
from zencourt_pipeline.pipeline.intake import ID_PATTERN, BatchRejected, reject_batch
from zencourt_pipeline.pipeline.reconcile import reconcile_tasks

MAX_BATCHES_PER_TICK = 25  # run creation costs ~0.25 s each on 2 cores


@dg.sensor(
    job=batch_intake_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Claims pending video_gen_batch rows by status, adds their partitions and requests their intake runs.",
)
def pending_batches_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabaseResource) -> dg.SensorResult:
    db = app_db.get()
    claimed = db.claim_pending_batches(limit=MAX_BATCHES_PER_TICK)
    if not claimed:
        return dg.SensorResult(skip_reason="no pending batch")
    # The batch id becomes the partition key: only [A-Za-z0-9_-]{1,64} is safe for the UI's
    # partition selection and backfills, so any other id is rejected here, before it is a partition.
    for batch in claimed:
        if not ID_PATTERN.match(batch["id"]):
            error = BatchRejected("INVALID_INPUT", f"batch id {batch['id']!r} must match [A-Za-z0-9_-]{{1,64}}")
            reject_batch(db, batch["id"], db.get_jobs(batch["id"]), error)
    keys = [batch["id"] for batch in claimed if ID_PATTERN.match(batch["id"])]
    if not keys:
        return dg.SensorResult(skip_reason="only batches with ids unusable as partition keys (rejected)")
    new_keys = [key for key in keys if not context.instance.has_dynamic_partition(batch_partitions.name, key)]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=key,
                run_key=f"intake-{key}",
                tags={"zencourt/batch_id": key, "zencourt/stage": "intake"},
            )
            for key in keys
        ],
        dynamic_partitions_requests=[batch_partitions.build_add_request(new_keys)] if new_keys else [],
    )


@dg.sensor(
    job=batch_compose_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns recorded clip completions (fal webhooks, Runway polls, local renders) into compose runs.",
)
def clip_completions_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabaseResource) -> dg.SensorResult:
    db = app_db.get()
    requests = []
    for batch_id in db.processing_batch_ids(limit=200):
        ready, digest = generation_state(db, batch_id)
        if ready:
            requests.append(
                dg.RunRequest(
                    partition_key=batch_id,
                    run_key=f"compose-{batch_id}-{digest}",
                    tags={"zencourt/batch_id": batch_id, "zencourt/stage": "compose"},
                )
            )
        if len(requests) >= MAX_BATCHES_PER_TICK:
            break
    if not requests:
        return dg.SensorResult(skip_reason="no batch with all completions recorded")
    return dg.SensorResult(run_requests=requests)


@dg.sensor(
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reconciler: polls Runway tasks (no more often than every 5 s each) and fal requests whose "
        "webhook is overdue, recording their completions for clip_completions_sensor."
    ),
)
def generation_reconciler_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource, generators: GeneratorsResource
) -> dg.SkipReason:
    db = app_db.get()
    chain = generators.chain(db)
    try:
        report = reconcile_tasks(db, chain, webhook_overdue_after=generators.webhook_overdue_after())
    finally:
        chain.close()
    return dg.SkipReason(f"polled {report.polled} task(s), recorded {report.recorded} completion(s), {report.errors} error(s)")
