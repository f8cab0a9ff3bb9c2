import base64

import dagster as dg

from zencourt_pipeline.defs.assets.common import OWNERS, STEP_RETRY, count, load_batch, scratch_dir, table
from zencourt_pipeline.defs.assets.generation import generated_clips
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, PipelineSettingsResource, StorageResource
from zencourt_pipeline.pipeline.composition import compose_batch, normalize_outputs


@dg.asset(
    partitions_def=batch_partitions,
    deps=[generated_clips],
    group_name="composition",
    kinds={"python", "ffmpeg"},
    owners=OWNERS,
    code_version="1",
    tags={"stage": "composition"},
    retry_policy=STEP_RETRY,
)
def normalized_clips(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, storage: StorageResource
) -> dg.MaterializeResult:
    """Every generated clip in one ffmpeg pass: the batch's frame size (1280x720 or 720x1280),
    30 fps, H.264 yuv420p, no audio, trimmed to the job's duration, with a thumbnail. Published
    under `batches/<batch>/clips/`; the job is `completed` with its URLs."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    with scratch_dir("normalize") as work:
        results = normalize_outputs(db, storage.get(), batch, jobs, work)
    return dg.MaterializeResult(
        metadata={
            "clips_completed": count(results, "completed"),
            "clips_failed": count(results, "failed"),
            "clips": table(results),
        }
    )


class ComposeConfig(dg.Config):
    """Operator overrides for a re-compose (the clips are reused as they are)."""

    template: str | None = None
    orientation: str | None = None


@dg.asset(
    partitions_def=batch_partitions,
    deps=[normalized_clips],
    group_name="composition",
    kinds={"python", "ffmpeg"},
    owners=OWNERS,
    code_version="1",
    tags={"stage": "composition"},
    retry_policy=STEP_RETRY,
)
def composed_video(
    context: dg.AssetExecutionContext,
    config: ComposeConfig,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    pipeline_settings: PipelineSettingsResource,
) -> dg.MaterializeResult:
    """The listing video: the completed clips in order with crossfades, a title card from
    `video_gen_batch.title`, room captions and the template's music; plus its thumbnail.
    Published under `batches/<batch>/video/`; the batch ends `completed` (or `failed` when no
    clip survived) and the web app is told through the outbox."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    with scratch_dir("compose") as work:
        report = compose_batch(
            db,
            storage.get(),
            batch,
            jobs,
            work,
            enabled=pipeline_settings.enable_final_composition,
            template_name=config.template,
            orientation=config.orientation,
        )
        preview = None
        if report.local_thumbnail and report.local_thumbnail.is_file():
            preview = base64.b64encode(report.local_thumbnail.read_bytes()).decode()
    if report.status in ("failed", "canceled"):
        raise dg.Failure(f"batch {batch['id']} {report.status}: {report.error}", allow_retries=False)
    metadata = {
        "status": report.status,
        "video_uri": dg.MetadataValue.url(report.video_uri) if report.video_uri else None,
        "thumbnail_uri": dg.MetadataValue.url(report.thumbnail_uri) if report.thumbnail_uri else None,
        "duration_s": report.duration_s,
        "planned_duration_s": report.planned_duration_s,
        "size_bytes": report.size_bytes,
        "resolution": f"{report.width}x{report.height}" if report.width else None,
        "template": report.template,
        "clips_used": report.clips_used,
        "clips_failed": report.clips_failed,
        "failed_clips": report.error,
    }
    if preview:
        metadata["preview"] = dg.MetadataValue.md(f"![thumbnail](data:image/jpeg;base64,{preview})")
    return dg.MaterializeResult(metadata={k: v for k, v in metadata.items() if v is not None})
