import dagster as dg

from zencourt_pipeline.db.records import BatchStatus
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
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.clip_checks import (
    MAX_PHOTO_ASPECT,
    MIN_PHOTO_SHORT_SIDE,
)
from zencourt_pipeline.pipeline.intake import (
    BatchRejected,
    ingest_photos,
    inspect_photos,
    reject_batch,
    validate_batch,
)
from zencourt_pipeline.pipeline.quota import enforce_quota

PHOTOS_CHECK = "photos_usable"


@dg.asset(
    partitions_def=batch_partitions,
    group_name="intake",
    kinds={"python", "pillow"},
    op_tags=queue_tags(WorkQueue.PROVIDERS),
    owners=OWNERS,
    code_version="2",
    tags={"stage": "intake"},
    retry_policy=STEP_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            PHOTOS_CHECK,
            asset="listing_photos",
            description=(
                f"Every stored photo of the batch decodes, has a short side of at least {MIN_PHOTO_SHORT_SIDE} px "
                f"and an aspect ratio within 1:{MAX_PHOTO_ASPECT:g}. Not blocking: photos that cannot be used at "
                "all already fail their own job at intake; a small or odd-shaped photo still makes a clip."
            ),
        )
    ],
)
def listing_photos(
    context: dg.AssetExecutionContext,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    generators: GeneratorsResource,
    pipeline_settings: PipelineSettingsResource,
):
    """The batch's listing photos, fetched (SSRF-safe), EXIF-oriented, converted to RGB JPEG,
    size-bounded and stored under `batches/<batch>/photos/`. A photo that cannot be used fails
    its own job (error code and message in video_gen_jobs); the rest of the batch goes on.
    A batch that would exceed the monthly clip quota of its listing (or workspace) is rejected
    here with QUOTA_EXCEEDED, before any download or provider call."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    quota = []
    try:
        validate_batch(batch, jobs)
        if not batch.terminal and not db.tasks_for_batch(batch.id):
            # only before the batch's first provider call: a re-run never rejects a batch it already paid for
            quota = enforce_quota(
                db,
                batch,
                sum(1 for job in jobs if not job.terminal),
                listing_quota=pipeline_settings.monthly_clip_quota,
                workspace_quota=pipeline_settings.workspace_monthly_clip_quota,
            )
    except BatchRejected as exc:
        reject_batch(db, batch.id, jobs, exc)
        raise dg.Failure(
            f"batch rejected at intake: {exc.code}: {exc.message}",
            metadata={"error_code": str(exc.code), "error_message": exc.message, "batch_id": batch.id},
            allow_retries=False,
        ) from exc
    if batch.status == BatchStatus.PENDING:
        db.start_batch(batch.id)
    storage_client = storage.get()
    with scratch_dir("intake") as work:
        results = ingest_photos(db, storage_client, batch, jobs, work, generators.fetch_policy())
        ready = count(results, "ready")
        if ready == 0:
            db.finish_batch(
                batch.id, BatchStatus.FAILED, error="no usable photo in the batch", error_code=ErrorCode.NO_USABLE_PHOTO
            )
            raise dg.Failure("no usable photo in the batch", metadata={"photos": table(results)}, allow_retries=False)
        check = _photos_check(inspect_photos(storage_client, results, work), batch.id)
    metadata = {
        "batch_id": batch.id,
        "listing_id": batch.listing_id,
        "orientation": batch.orientation,
        "photos_total": len(results),
        "photos_ready": ready,
        "photos_failed": count(results, "failed"),
        "photos": table(results),
    }
    for usage in quota:
        metadata[f"quota_{usage.scope}"] = f"{usage.used} + {usage.requested} of {usage.quota} clips in {usage.month}"
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def _photos_check(inspected, batch_id: str) -> dg.AssetCheckResult:
    rows, problems, undecodable = [], [], 0
    for result in inspected:
        inspection = result.inspection
        undecodable += any(p.startswith("not decodable") for p in inspection.problems)
        if inspection.problems:
            problems.append(f"{result.job_id} ({result.room_name}): {'; '.join(inspection.problems)}")
        rows.append(
            {
                "job_id": result.job_id,
                "room": result.room_name,
                "width": inspection.width,
                "height": inspection.height,
                "aspect": inspection.aspect,
                "passed": inspection.passed,
                "problems": "; ".join(inspection.problems) or None,
            }
        )
    description = (
        f"{len(problems)} of {len(rows)} photos of batch {batch_id} fall short: " + " | ".join(problems)
        if problems
        else f"all {len(rows)} photos of batch {batch_id} decode, >= {MIN_PHOTO_SHORT_SIDE} px short side, sane aspect"
    )
    return dg.AssetCheckResult(
        check_name=PHOTOS_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR if undecodable else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"batch_id": batch_id, "photos_checked": len(rows), "photos_failing": len(problems), "photos": table(rows)},
    )
