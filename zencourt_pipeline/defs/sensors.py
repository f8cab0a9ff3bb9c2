"""Sensors: new batches -> intake runs; provider polls -> completions -> compose runs (one tick);
failed intake runs -> a bounded new attempt.

Each is cheap per tick (a few indexed queries over a capped, rotating page of batches) and
idempotent: the database claim, the stored completion-state digest and the run keys make sure
each batch state produces one run, whatever the tick count. The completions sensor is also the
watchdog of `pipeline/liveness.py`: every processing batch ends within its deadlines.

The completions sensor is also the reconciler (`pipeline/reconcile.py`): it polls the providers
first and then reads the completions, in one tick, so a clip completion it polls is turned into
the compose run in that tick. As two sensors (a reconciler, then the completions sensor) they ran
side by side in each daemon loop: the completions sensor had read the batch before the reconciler
recorded the last clip, and requested its run a loop (5 s) later (issue 13 point 7: the tail's
`batch_tail_sensor_wait_s`). One sensor keeps one requester per run key (Dagster dedupes run keys
per sensor), which two requesting sensors would not.
"""

from __future__ import annotations

from collections import Counter

import dagster as dg

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import BatchStatus
from zencourt_pipeline.defs.jobs import batch_clips_job, batch_compose_job, batch_intake_job
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, GeneratorsResource, PipelineSettingsResource
from zencourt_pipeline.defs.runs import ACTIVE_RUN_STATUSES as CANCELABLE_RUN_STATUSES
from zencourt_pipeline.domain import ID_RE
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.intake import BatchRejected, reject_batch
from zencourt_pipeline.pipeline.liveness import (
    CLIPS_STAGE,
    RUN_ACTIVE,
    RUN_ENDED,
    RunEnd,
    intake_run_key,
    on_intake_failed,
    watch_processing,
)
from zencourt_pipeline.pipeline.reconcile import reconcile_tasks

# The daemon evaluates sensors in a loop of 5 s at the fastest, skipping a sensor whose last tick
# began less than its minimum interval ago. At exactly 5 s, a tick that began a few milliseconds
# into its loop is still "too recent" at the next loop, so it runs every other loop (10 s; measured
# as batch_tail_sensor_wait_s). Below the loop time, the hot-path sensors run on every loop.
HOT_PATH_INTERVAL_SECONDS = 2
MAX_BATCHES_PER_TICK = 25  # run creation costs ~0.25 s each on 2 cores
BATCHES_EXAMINED_PER_TICK = 200  # a rotating page: every open batch is looked at every N/200 ticks
RUN_KEY_TAG = "dagster/run_key"
# a run still on its way (cancel.py's list, plus one being canceled): the watchdog waits for it
ACTIVE_RUN_STATUSES = {dg.DagsterRunStatus[name] for name in (*CANCELABLE_RUN_STATUSES, "CANCELING")}


@dg.sensor(
    job=batch_intake_job,
    minimum_interval_seconds=HOT_PATH_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Claims pending video_gen_batch rows by status, adds their partitions and requests their intake runs.",
)
def pending_batches_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabaseResource) -> dg.SensorResult:
    """Claim pending batches, reject ids unfit as partition keys, request intake runs for the rest."""
    db = app_db.get()
    claimed = db.pickup.claim_pending_batches(limit=MAX_BATCHES_PER_TICK)
    if not claimed:
        return dg.SensorResult(skip_reason="no pending batch")
    # The batch id becomes the partition key: only [A-Za-z0-9_-]{1,64} is safe for the UI's
    # partition selection and backfills, so any other id is rejected here, before it is a partition.
    for batch in claimed:
        if not ID_RE.match(batch.id):
            error = BatchRejected(ErrorCode.INVALID_INPUT, f"batch id {batch.id!r} must match [A-Za-z0-9_-]{{1,64}}")
            reject_batch(db.batches, batch.id, db.batches.get_jobs(batch.id), error)
    attempts = {batch.id: int(batch.intake_attempts or 0) for batch in claimed}
    # a batch claimed again (its claim is older than RECLAIM_AFTER) whose intake run exists is only
    # waiting in the run queue; one whose run request never landed is requested again
    has_run = run_status_by_key(context.instance)
    keys = [b.id for b in claimed if ID_RE.match(b.id) and has_run(intake_run_key(b.id, attempts[b.id])) is None]
    if not keys:
        return dg.SensorResult(skip_reason="no batch to request: unusable ids rejected, the others' runs exist")
    new_keys = [key for key in keys if not context.instance.has_dynamic_partition(batch_partitions.name, key)]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=key,
                run_key=intake_run_key(key, attempts[key]),
                tags={"zencourt/batch_id": key, "zencourt/stage": "intake"},
            )
            for key in keys
        ],
        dynamic_partitions_requests=[batch_partitions.build_add_request(new_keys)] if new_keys else [],
    )


def run_is_active(instance: dg.DagsterInstance):
    """`run_id -> bool`: whether that run is still queued or in progress."""

    def active(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and not run.is_finished

    return active


def clips_run_on_its_way(instance: dg.DagsterInstance):
    """Whether a clips run of a batch is queued or running (clip-first: one at a time per batch)."""

    def on_its_way(batch_id: str) -> bool:
        filters = dg.RunsFilter(tags={"zencourt/batch_id": batch_id, "zencourt/stage": CLIPS_STAGE},
                                statuses=list(ACTIVE_RUN_STATUSES))
        return bool(instance.get_run_records(filters=filters, limit=1))

    return on_its_way


def run_status_by_key(instance: dg.DagsterInstance):
    """`run_key -> active | ended | None` over the instance's runs (None: no run has that key yet)."""

    def status(run_key: str) -> str | None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
        if not runs:
            return None
        return RUN_ACTIVE if runs[0].status in ACTIVE_RUN_STATUSES else RUN_ENDED

    return status


@dg.sensor(
    jobs=[batch_compose_job, batch_clips_job],
    minimum_interval_seconds=HOT_PATH_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reconciler: polls Runway tasks (no more often than every 5 s each) and fal requests whose webhook is "
        "overdue, recording their completions, and cancels the tasks of ended jobs. Then, in the same tick, "
        "turns recorded clip completions (fal webhooks, Runway polls, local renders) into compose runs, once per "
        "completion state, and into clips runs (collect, normalize, publish) for the clips that arrived while others "
        "are still generating; retries a compose run that ended without finishing its batch (bounded); fails batches "
        "past their deadlines (GENERATION_TIMEOUT, COMPOSITION_FAILED, COMPOSITION_TIMEOUT, CLIP_CHECK_FAILED)."
    ),
)
def clip_completions_sensor(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource, pipeline_settings: PipelineSettingsResource,
    generators: GeneratorsResource,
) -> dg.SensorResult:
    """Poll the providers (the reconciler), then run the liveness watchdog over processing batches and
    request the compose runs it asks for."""
    db = app_db.get()
    reconciled = _reconcile(context, db, generators)
    batches = db.liveness.rotate_batches(BatchStatus.PROCESSING, BATCHES_EXAMINED_PER_TICK)
    report = watch_processing(
        db, batches, run_status_by_key(context.instance), pipeline_settings.deadlines(), max_requests=MAX_BATCHES_PER_TICK,
        clips_running=clips_run_on_its_way(context.instance),
    )
    requests = [
        dg.RunRequest(
            job_name=batch_compose_job.name,
            partition_key=request.batch_id,
            run_key=request.run_key,
            tags={"zencourt/batch_id": request.batch_id, "zencourt/stage": "compose", "zencourt/attempt": str(request.attempt)},
        )
        for request in report.requests
    ] + [
        dg.RunRequest(
            job_name=batch_clips_job.name,
            partition_key=request.batch_id,
            run_key=request.run_key,
            tags={"zencourt/batch_id": request.batch_id, "zencourt/stage": CLIPS_STAGE},
        )
        for request in report.clip_requests
    ]
    summary = (
        f"{reconciled}; examined {len(batches)} batch(es): {len(report.requests)} compose run(s) and {len(report.clip_requests)} "
        f"clips run(s) requested, {report.waiting} waiting, "
        f"{report.timed_out_jobs} clip(s) timed out, {len(report.failed)} batch(es) failed"
    )
    if report.failed:
        context.log.warning("batches failed by the watchdog: %s", ", ".join(f"{b} {c}" for b, c in report.failed))
    if not requests:
        return dg.SensorResult(skip_reason=summary)
    context.log.info(summary)
    return dg.SensorResult(run_requests=requests)


# failure reasons (`dagster/failure_reason`) of runs whose own code failed; a run failed for any
# other reason was stopped by the infrastructure: run monitoring found its worker dead (no reason
# recorded), a restart, a start timeout, a process that could not load the job
FAILED_RUN_REASONS = frozenset({"STEP_FAILURE", "RUN_EXCEPTION"})


def intake_failures(instance: dg.DagsterInstance, batch_id: str) -> Counter[RunEnd]:
    """The batch's failed intake runs, by how they ended (from the runs' failure-reason tags)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=batch_intake_job.name, statuses=[dg.DagsterRunStatus.FAILURE], tags={"zencourt/batch_id": batch_id}
        )
    )
    return Counter(
        RunEnd.FAILED if run.tags.get("dagster/failure_reason") in FAILED_RUN_REASONS else RunEnd.INTERRUPTED
        for run in runs
    )


@dg.run_failure_sensor(
    monitored_jobs=[batch_intake_job],
    request_job=batch_intake_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description=(
        "A failed intake run of a still-open batch gets a new attempt (a new run key) up to ZENCOURT_MAX_RUN_ATTEMPTS; "
        "then the batch fails with INTAKE_FAILED and the web app is told."
    ),
)
def intake_failure_sensor(
    context: dg.RunFailureSensorContext, app_db: AppDatabaseResource, pipeline_settings: PipelineSettingsResource
):
    """Retry a failed intake run under a new run key, or fail the batch when out of attempts."""
    batch_id = context.dagster_run.tags.get("zencourt/batch_id") or context.dagster_run.tags.get("dagster/partition")
    if not batch_id:
        return dg.SkipReason("run of no batch")
    failures = intake_failures(context.instance, batch_id)
    run_key = on_intake_failed(app_db.get(), batch_id, pipeline_settings.max_run_attempts, failures)
    if run_key is None:
        return dg.SkipReason(f"batch {batch_id} is not open or is out of intake attempts")
    return dg.RunRequest(
        partition_key=batch_id, run_key=run_key, tags={"zencourt/batch_id": batch_id, "zencourt/stage": "intake"}
    )


def _reconcile(context: dg.SensorEvaluationContext, db: AppDatabase, generators: GeneratorsResource) -> str:
    """Poll overdue provider tasks, record their completions and cancel the tasks of ended jobs: what
    was done, in words."""
    chain = generators.chain(db)
    try:
        report = reconcile_tasks(
            db, chain, webhook_overdue_after=generators.webhook_overdue_after(), is_run_active=run_is_active(context.instance)
        )
    finally:
        chain.close()
    return (
        f"polled {report.polled} task(s), recorded {report.recorded} completion(s), {report.errors} error(s), "
        f"canceled {report.canceled} task(s) of ended jobs, gave up {report.intents_given_up} unanswered create(s) "
        f"of ended jobs, linked {report.linked} completion(s) recorded before their task"
    )
