import dagster as dg

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.assets.common import OWNERS, STEP_RETRY, count, load_batch, scratch_dir, table
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, GeneratorsResource, StorageResource
from zencourt_pipeline.pipeline.generation import collect_outputs, generation_state, submit_jobs

# Provider-facing steps share a concurrency pool named after the primary provider (runway_api,
# fal_api, local_api); its limit comes from the instance (dagster.yaml default_limit, or
# `dagster instance concurrency set runway_api N`).
GENERATION_POOL = f"{Settings.from_env().generation_providers[0]}_api"


@dg.asset(
    partitions_def=batch_partitions,
    deps=["listing_photos"],
    group_name="generation",
    kinds={"python"},
    owners=OWNERS,
    code_version="1",
    tags={"stage": "generation"},
    retry_policy=STEP_RETRY,
    pool=GENERATION_POOL,
)
def clip_tasks(
    context: dg.AssetExecutionContext,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    generators: GeneratorsResource,
) -> dg.MaterializeResult:
    """One generation task per job at the first provider of GENERATION_PROVIDERS that accepts it
    (fallback policy in the README). Task ids are persisted the moment a provider answers; a job
    with a live or finished task is never submitted again, so re-materializing is free."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    chain = generators.chain(db)
    with scratch_dir("submit") as work:
        outcomes = submit_jobs(db, storage.get(), chain, batch, jobs, work)
    ready, _digest = generation_state(db, batch["id"])
    return dg.MaterializeResult(
        metadata={
            "submitted": count(outcomes, "submitted"),
            "already_submitted": count(outcomes, "existing"),
            "failed": count(outcomes, "failed"),
            "providers": ", ".join(chain.order),
            "all_completions_recorded": ready,
            "tasks": table(outcomes),
        }
    )


@dg.asset(
    partitions_def=batch_partitions,
    deps=[clip_tasks],
    group_name="generation",
    kinds={"python"},
    owners=OWNERS,
    code_version="1",
    tags={"stage": "generation"},
    retry_policy=STEP_RETRY,
    pool=GENERATION_POOL,
)
def generated_clips(
    context: dg.AssetExecutionContext,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    generators: GeneratorsResource,
) -> dg.MaterializeResult:
    """The providers' output clips, downloaded at once (provider URLs expire) into our storage
    under `batches/<batch>/generated/`. Failed tasks fall back to the next provider or fail
    their job. Started by the completions sensor when every job's completion is recorded."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    with scratch_dir("collect") as work:
        outcomes = collect_outputs(db, storage.get(), generators.chain(db), batch, jobs, work)
    in_flight = count(outcomes, "in_flight") + count(outcomes, "submitted")
    if in_flight:
        raise dg.Failure(
            f"{in_flight} clip(s) still generating; the completions sensor starts composition when they finish",
            metadata={"clips": table(outcomes)},
            allow_retries=False,
        )
    return dg.MaterializeResult(
        metadata={
            "clips_stored": count(outcomes, "stored"),
            "clips_failed": count(outcomes, "failed"),
            "clips": table(outcomes),
        }
    )
