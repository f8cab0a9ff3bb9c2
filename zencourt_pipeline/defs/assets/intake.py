import dagster as dg

from zencourt_pipeline.defs.assets.common import (
    OWNERS,
    STEP_RETRY,
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
from zencourt_pipeline.pipeline.clip_checks import (
    MAX_PHOTO_ASPECT,
    MIN_PHOTO_SHORT_SIDE,
)
from zencourt_pipeline.pipeline.given_clips import ClipOutcome
from zencourt_pipeline.pipeline.intake import IntakeStatus, PhotoOutcome, take_in_batch

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
    storage_client = storage.get()
    quota = pipeline_settings.quota_limits()
    with scratch_dir("intake") as work:
        # the local generator alone can render clips of any length: time them to a narration
        timed = list(generators.providers) == ["local"]
        report = take_in_batch(
            db, storage_client, batch, jobs, work, generators.fetch_policy(), quota=quota, time_to_narration=timed
        )
    if report.status == IntakeStatus.REJECTED:
        raise dg.Failure(
            f"batch rejected at intake: {report.error_code}: {report.error_message}",
            metadata={"error_code": str(report.error_code), "error_message": report.error_message, "batch_id": batch.id},
            allow_retries=False,
        )
    if report.status == IntakeStatus.NO_USABLE_PHOTO:
        raise dg.Failure(
            report.error_message, metadata={"photos": table(report.photos), "given_clips": table(report.clips)},
            allow_retries=False,
        )
    metadata = {
        "batch_id": batch.id,
        "listing_id": batch.listing_id,
        "orientation": batch.orientation,
        "photos_total": len(report.photos),
        "photos_ready": report.count(PhotoOutcome.READY),
        "photos_failed": report.count(PhotoOutcome.FAILED),
        "photos": table(report.photos),
    }
    if report.clips:  # given clips (clip_url): checked and stored, no generation
        metadata |= {
            "given_clips_ready": report.count_clips(ClipOutcome.READY),
            "given_clips_failed": report.count_clips(ClipOutcome.FAILED),
            "given_clips": table(report.clips),
        }
    for usage in report.quota_usage:
        metadata[f"quota_{usage.scope}"] = f"{usage.used} + {usage.requested} of {usage.quota} clips in {usage.month}"
    return dg.MaterializeResult(metadata=metadata, check_results=[_photos_check(report.inspected, batch.id)])


def _photos_check(inspected, batch_id: str) -> dg.AssetCheckResult:
    rows, problems, unusable = [], [], False
    for result in inspected:
        inspection = result.inspection
        unusable = unusable or inspection.unusable
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
        severity=dg.AssetCheckSeverity.ERROR if unusable else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"batch_id": batch_id, "photos_checked": len(rows), "photos_failing": len(problems), "photos": table(rows)},
    )
