from collections.abc import Callable, Iterator

import dagster as dg
from pydantic import Field

from zencourt_pipeline.config import pool_name, setting_default
from zencourt_pipeline.defs.assets.common import (
    OWNERS,
    STEP_RETRY,
    count,
    load_batch,
    scratch_dir,
    table,
)
from zencourt_pipeline.defs.executors import queue_tags
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import (
    AppDatabaseResource,
    GeneratorsResource,
    PipelineSettingsResource,
    StorageResource,
)
from zencourt_pipeline.domain import WorkQueue
from zencourt_pipeline.pipeline.actions import STAGE_TAG
from zencourt_pipeline.pipeline.collect import collect_outputs
from zencourt_pipeline.pipeline.generation import SubmissionOutcome, SubmissionStatus, submit_batch
from zencourt_pipeline.pipeline.liveness import CLIPS_STAGE

# Provider-facing steps share a concurrency pool named after the primary provider (runway_api,
# fal_api, local_api); its limit comes from the instance (dagster.yaml default_limit, or
# `dagster instance concurrency set runway_api N`). The pool is that of the settings given to
# build_definitions (`generation_assets(settings.generation_pool)`); the module-level definitions
# below are in the embedded default's pool, and nothing here reads the environment.
DEFAULT_GENERATION_POOL = pool_name(setting_default("generation_providers")[0])
_POOLED: list[Callable[[str], dg.AssetsDefinition]] = []


def pooled_asset(**asset_args) -> Callable[[Callable], dg.AssetsDefinition]:
    """`@dg.asset(**asset_args)` whose `pool=` is chosen by the settings: the decorated name is the
    definition in DEFAULT_GENERATION_POOL; `generation_assets(pool)` builds it again in `pool`."""

    def decorate(fn: Callable) -> dg.AssetsDefinition:
        def build(pool: str) -> dg.AssetsDefinition:
            return dg.asset(pool=pool, **asset_args)(fn)

        _POOLED.append(build)
        return build(DEFAULT_GENERATION_POOL)

    return decorate


def generation_assets(pool: str) -> list[dg.AssetsDefinition]:
    """clip_tasks and generated_clips in the concurrency pool `pool`."""
    return [build(pool) for build in _POOLED]


class ClipTasksConfig(dg.Config):
    """Operator action: regenerate only some jobs of the batch."""

    regenerate_job_ids: list[str] = Field(
        default_factory=list,
        description=(
            "Jobs to generate again (a new paid task each; their finished tasks are marked superseded). "
            "Jobs not named are untouched; a named job still generating is left as it is. Refused for unknown "
            "or canceled jobs and over the monthly clip quota."
        ),
    )


@pooled_asset(
    partitions_def=batch_partitions,
    deps=["listing_photos"],
    group_name="generation",
    kinds={"python"},
    op_tags=queue_tags(WorkQueue.PROVIDERS),
    owners=OWNERS,
    code_version="2",
    tags={"stage": "generation"},
    retry_policy=STEP_RETRY,
)
def clip_tasks(
    context: dg.AssetExecutionContext,
    config: ClipTasksConfig,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    generators: GeneratorsResource,
    pipeline_settings: PipelineSettingsResource,
) -> dg.MaterializeResult:
    """One generation task per job at the first provider of GENERATION_PROVIDERS that accepts it
    (fallback policy in docs/architecture.md). Task ids are persisted the moment a provider answers; a job
    with a live or finished task is never submitted again, so re-materializing is free.
    With run config `regenerate_job_ids`, exactly those jobs get a new task (see docs/operations.md)."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    chain = generators.chain(db)

    def is_run_active(run_id: str) -> bool:
        run = context.instance.get_run_by_id(run_id)
        return run is not None and not run.is_finished

    with scratch_dir("submit") as work:
        report = submit_batch(
            db, storage.get(), chain, batch, jobs, work, quota=pipeline_settings.quota_limits(),
            regenerate_job_ids=config.regenerate_job_ids, run_id=context.run.run_id, is_run_active=is_run_active,
        )  # fmt: skip
    if report.status == SubmissionStatus.REFUSED:
        raise dg.Failure(
            f"regeneration refused: {report.error_code}: {report.error_message}",
            metadata={"error_code": str(report.error_code), "regenerate_job_ids": ", ".join(config.regenerate_job_ids)},
            allow_retries=False,
        )
    plan = report.regeneration
    if plan is not None:
        context.log.info(f"regenerating {len(plan.reset)} job(s); {report.superseded} finished task(s) superseded")
        for job_id, why in plan.skipped.items():
            context.log.warning(f"job {job_id} not reset: {why}")
    metadata = {
        "batch_id": batch.id,
        "submitted": report.count(SubmissionOutcome.SUBMITTED),
        "already_submitted": report.count(SubmissionOutcome.EXISTING),
        "failed": report.count(SubmissionOutcome.FAILED),
        "given_clips": report.count(SubmissionOutcome.GIVEN),
        "providers": ", ".join(chain.order),
        "all_completions_recorded": report.all_completions_recorded,
        "tasks": table(report.outcomes),
    }
    if plan is not None:
        metadata["regenerated_jobs"] = ", ".join(job.id for job in plan.reset) or None
        metadata["superseded_tasks"] = report.superseded
        if plan.skipped:
            metadata["regenerate_skipped"] = "; ".join(f"{job_id}: {why}" for job_id, why in plan.skipped.items())
    return dg.MaterializeResult(metadata=metadata)


@pooled_asset(
    partitions_def=batch_partitions,
    deps=[clip_tasks],
    group_name="generation",
    kinds={"python"},
    op_tags=queue_tags(WorkQueue.PROVIDERS),
    owners=OWNERS,
    code_version="1",
    tags={"stage": "generation"},
    retry_policy=STEP_RETRY,
    output_required=False,
)
def generated_clips(
    context: dg.AssetExecutionContext,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    generators: GeneratorsResource,
    pipeline_settings: PipelineSettingsResource,
) -> Iterator[dg.MaterializeResult]:
    """The providers' output clips, downloaded at once (provider URLs expire) into our storage
    under `batches/<batch>/generated/`. Failed tasks fall back to the next provider or fail
    their job. Started by the completions sensor when every job's completion is recorded.

    When a clip is still generating (a fallback task was just submitted here), a compose run
    materializes nothing and the rest of it is skipped, not failed: the completions sensor starts
    composition again once that task's completion is recorded. A clips run (clip-first, started
    while other clips are still generating) goes on to normalize the clips that are here."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    with scratch_dir("collect") as work:
        outcomes = collect_outputs(
            db, storage.get(), generators.chain(db), batch, jobs, work, quota=pipeline_settings.quota_limits(),
            max_download_attempts=pipeline_settings.max_download_attempts,
        )
    generating = (SubmissionOutcome.IN_FLIGHT, SubmissionOutcome.SUBMITTED)
    in_flight = sum(count(outcomes, status) for status in generating)
    clips_run = context.run.tags.get(STAGE_TAG) == CLIPS_STAGE
    if in_flight:
        waiting = ", ".join(f"{o.job_id} ({o.provider} {o.task_id})" for o in outcomes if o.status in generating)
        if not clips_run:
            context.log.info(
                f"{in_flight} clip(s) still generating: {waiting}. Composition is skipped for now; the "
                "completions sensor starts it again when they finish."
            )
            return
        context.log.info(f"{in_flight} clip(s) still generating: {waiting}. The clips that are here are normalized now.")
    yield dg.MaterializeResult(
        metadata={
            "batch_id": batch.id,
            "clips_stored": count(outcomes, SubmissionOutcome.STORED),
            "clips_failed": count(outcomes, SubmissionOutcome.FAILED),
            "clips_in_flight": in_flight,
            "clips": table(outcomes),
        }
    )
