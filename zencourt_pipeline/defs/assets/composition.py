
from typing import Any

import dagster as dg

from zencourt_pipeline.defs.assets.common import (
    OWNERS,
    STEP_RETRY,
    image_markdown,
    load_batch,
    scratch_dir,
    table,
)
from zencourt_pipeline.defs.assets.generation import generated_clips
from zencourt_pipeline.defs.executors import queue_tags
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, PipelineSettingsResource, StorageResource
from zencourt_pipeline.domain import WorkQueue
from zencourt_pipeline.pipeline.analytics import clip_rows
from zencourt_pipeline.pipeline.clip_checks import (
    BLACK_LUMA,
    CLIP_DURATION_TOLERANCE_S,
    MAX_BLACK_RATIO,
    MAX_FROZEN_RATIO,
    VIDEO_DURATION_TOLERANCE_S,
)
from zencourt_pipeline.pipeline.composition import CompositionReport, compose_batch, output_rows
from zencourt_pipeline.pipeline.normalize import NormalizeOutcome, NormalizeResult, normalize_batch

CLIPS_CHECK = "clips_usable"
VIDEO_CHECK = "video_matches_plan"
PLATFORM_CHECK = "platform_ready"


@dg.asset(
    partitions_def=batch_partitions,
    deps=[generated_clips],
    group_name="composition",
    kinds={"python", "ffmpeg"},
    op_tags=queue_tags(WorkQueue.MEDIA),
    owners=OWNERS,
    code_version="2",
    tags={"stage": "composition"},
    retry_policy=STEP_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            CLIPS_CHECK,
            asset="normalized_clips",
            blocking=True,
            description=(
                "Every clip composition would use (the batch's completed jobs) is what the compositor expects: "
                f"duration = the job's (+-{CLIP_DURATION_TOLERANCE_S:g} s), the batch's frame size, H.264 yuv420p; and "
                f"not black (< {MAX_BLACK_RATIO:.0%} of sampled frames under luma {BLACK_LUMA}) nor frozen "
                f"(< {MAX_FROZEN_RATIO:.0%} of sampled frame pairs still). Blocking: a failure stops composition "
                "of the batch in that run; regenerate the named job(s) (clip_tasks regenerate_job_ids) to go on."
            ),
        )
    ],
)
def normalized_clips(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, storage: StorageResource
) -> dg.MaterializeResult:
    """Every generated clip in one ffmpeg pass: the batch's frame size (1280x720 or 720x1280),
    30 fps, H.264 yuv420p, no audio, trimmed to the job's duration, with a thumbnail. Published
    under `batches/<batch>/clips/`; the job is `completed` with its URLs. The `clips_usable`
    check (blocking) inspects every clip that composition would use."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    storage_client = storage.get()
    with scratch_dir("normalize") as work:
        result = normalize_batch(db, storage_client, batch, jobs, work)
        gallery = _clip_gallery(result)
    inspections = result.inspections
    durations = {job_id: inspection.duration_s for job_id, inspection in inspections.items() if inspection.duration_s}
    metadata = {
        "batch_id": batch.id,
        "clips_completed": result.count(NormalizeOutcome.COMPLETED),
        "clips_failed": result.count(NormalizeOutcome.FAILED),
        "clips_total_duration_s": round(sum(durations.values()), 2),
        "clips_total_bytes": sum(i.size_bytes or 0 for i in inspections.values()),
        "clips": table(clip_rows(db, batch.id, durations)),
        "normalized": table(result.clips),
    }
    if gallery:
        metadata["clip_thumbnails"] = dg.MetadataValue.md(gallery)
    # a failed blocking check stops composition until an operator regenerates the clips (the
    # stage blocked the batch: result.blocked)
    return dg.MaterializeResult(metadata=metadata, check_results=[_clips_check(batch, result)])


def _clips_check(batch, result: NormalizeResult) -> dg.AssetCheckResult:
    rooms = {job.id: job.room_name for job in result.jobs}
    inspections, failing = result.inspections, result.failing
    rows = [
        {
            "job_id": job_id,
            "room": rooms.get(job_id),
            "passed": i.passed,
            "duration_s": i.duration_s,
            "size": f"{i.width}x{i.height}" if i.width else None,
            "codec": f"{i.codec}/{i.pix_fmt}" if i.codec else None,
            "bytes": i.size_bytes,
            "black_ratio": i.black_ratio,
            "frozen_ratio": i.frozen_ratio,
            "motion": i.motion,
            "problems": "; ".join(i.problems) or None,
        }
        for job_id, i in inspections.items()
    ]
    if failing:
        reasons = " | ".join(f"{job_id} ({rooms.get(job_id)}): {'; '.join(i.problems)}" for job_id, i in failing.items())
        description = (
            f"Composition of batch {batch.id} stopped: {len(failing)} of {len(inspections)} clips unusable: {reasons}"
        )
    else:
        description = f"all {len(inspections)} clips of batch {batch.id} usable"
    return dg.AssetCheckResult(
        check_name=CLIPS_CHECK,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "batch_id": batch.id,
            "clips_checked": len(inspections),
            "clips_failing": len(failing),
            "failing_jobs": ", ".join(failing) or "none",
            "clips": table(rows),
        },
    )


def _clip_gallery(result: NormalizeResult, width: int = 192) -> str | None:
    """Each completed clip's thumbnail, small, with its room name (markdown)."""
    rooms = {job.id: job.room_name for job in result.jobs}
    parts = []
    for job_id, thumbnail in result.thumbnails.items():
        try:
            image = image_markdown(thumbnail, alt=rooms.get(job_id) or job_id, width=width, quality=70)
        except OSError:
            continue
        parts.append(f"**{rooms.get(job_id) or job_id}** (`{job_id}`)\n\n{image}")
    return "\n\n".join(parts) if parts else None


class ComposeConfig(dg.Config):
    """Operator overrides for a re-compose (the clips are reused as they are)."""

    template: str | None = None
    orientation: str | None = None


@dg.asset(
    partitions_def=batch_partitions,
    deps=[normalized_clips],
    group_name="composition",
    kinds={"python", "ffmpeg"},
    op_tags=queue_tags(WorkQueue.MEDIA),
    owners=OWNERS,
    code_version="2",
    tags={"stage": "composition"},
    retry_policy=STEP_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            VIDEO_CHECK,
            asset="composed_video",
            description=(
                f"The published video's duration matches the planned timeline (+-{VIDEO_DURATION_TOLERANCE_S:g} s), "
                "it has an audio track when the template has music or the batch a narration, and its thumbnail is "
                "stored and decodes."
            ),
        ),
        dg.AssetCheckSpec(
            PLATFORM_CHECK,
            asset="composed_video",
            blocking=True,
            description=(
                "Every published output (each rendition the batch asks for), its file read back (box walk, "
                "ffmpeg's stream report, EBU R128), meets the house "
                "rules (H.264 High yuv420p, constant 30 fps, closed GOPs, AAC-LC 48 kHz stereo at -14 LUFS +-1 "
                "and true peak <= -1 dBTP, moov before mdat, no edit lists) and the profile of every "
                "destination it targets (media/profiles.py)."
            ),
        ),
    ],
)
def composed_video(
    context: dg.AssetExecutionContext,
    config: ComposeConfig,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    pipeline_settings: PipelineSettingsResource,
):
    """The listing video in every output the batch asks for (`video_gen_batch.outputs`: shape,
    size, branded or MLS-unbranded; by default 16:9 and 9:16, each both): the completed clips in
    order with crossfades, a title card from `video_gen_batch.title`, room captions and the
    template's music; plus their thumbnails. Published under `batches/<batch>/video/`, one
    `video_gen_outputs` row each, the primary one in `video_gen_batch.video_url`; the batch ends `completed` (or `failed` when no
    clip survived) and the web app is told through the outbox. Run config `template` /
    `orientation` re-composes from the existing clips without regenerating them."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    storage_client = storage.get()
    with scratch_dir("compose") as work:
        report = compose_batch(
            db,
            storage_client,
            batch,
            jobs,
            work,
            enabled=pipeline_settings.enable_final_composition,
            template_name=config.template,
            orientation=config.orientation,
        )
        preview = None
        if report.local_thumbnail and report.local_thumbnail.is_file():
            preview = image_markdown(report.local_thumbnail, alt=f"{batch.id} thumbnail", width=480)
    if report.status.ended_badly:
        raise dg.Failure(f"batch {batch.id} {report.status}: {report.error}", allow_retries=False)
    metadata = _compose_metadata(batch, report, clip_rows(db, batch.id, report.clip_durations), config.orientation)
    if report.video_key:
        link = storage_client.url(report.video_key, expires_in=7 * 24 * 3600)
        if link != report.video_uri:
            metadata["video_link_7d"] = dg.MetadataValue.url(link)
    if preview:
        metadata["preview"] = dg.MetadataValue.md(preview)
    return dg.MaterializeResult(
        metadata={k: v for k, v in metadata.items() if v is not None},
        check_results=[_video_check(batch, report), _platform_check(batch, report)],
    )


def _compose_metadata(batch, report: CompositionReport, rows: list, orientation: str | None) -> dict[str, Any]:
    """What the materialization shows of a composition: the batch, the render (size, duration,
    strategy, narration and ducking), the clips used and their cost, the published URIs and a
    table of every output."""
    costs = [row.cost_credits for row in rows if row.cost_credits is not None]
    return {
        "batch_id": batch.id,
        "listing_id": batch.listing_id,
        "title": batch.title,
        "status": str(report.status),
        "template": report.template,
        "orientation": orientation or batch.orientation,
        "resolution": f"{report.width}x{report.height}" if report.width else None,
        "duration_s": report.duration_s,
        "planned_duration_s": report.planned_duration_s,
        "size_bytes": report.size_bytes,
        "clips_used": report.clips_used,
        "clips_failed": report.clips_failed,
        "render_strategy": report.render_strategy,
        "frames_copied": report.frames_copied if report.render_strategy else None,
        "render_note": report.render_note,
        "narration_s": report.narration_s,
        "music_ducked_db": report.music_ducked_db,
        "failed_clips": report.error,
        "cost_credits_total": round(sum(costs), 4) if costs else None,
        "video_uri": dg.MetadataValue.url(report.video_uri) if report.video_uri else None,
        "thumbnail_uri": dg.MetadataValue.url(report.thumbnail_uri) if report.thumbnail_uri else None,
        "clips": table(rows),
        "outputs": table(output_rows(report.outputs)) if report.outputs else None,
    }


def _video_check(batch, report: CompositionReport) -> dg.AssetCheckResult:
    inspection = report.inspection
    if inspection is None:  # clip-first (no video composed): nothing to check
        return dg.AssetCheckResult(
            check_name=VIDEO_CHECK, passed=True, description=f"no video composed ({report.status})",
            metadata={"batch_id": batch.id},
        )
    description = (
        f"video of batch {batch.id}: " + "; ".join(inspection.problems)
        if inspection.problems
        else f"video of batch {batch.id} matches its plan ({inspection.duration_s} s, "
        f"audio {'present' if inspection.has_audio else 'none (template without music)'}, thumbnail stored)"
    )
    return dg.AssetCheckResult(
        check_name=VIDEO_CHECK,
        passed=inspection.passed,
        description=description,
        metadata={
            "batch_id": batch.id,
            "duration_s": inspection.duration_s,
            "planned_duration_s": inspection.planned_duration_s,
            "has_audio": bool(inspection.has_audio),
            "template_has_music": report.expects_audio,
            "thumbnail_bytes": inspection.thumbnail_bytes or 0,
        },
    )


def _platform_check(batch, report: CompositionReport) -> dg.AssetCheckResult:
    """Every published output against its profiles (blocking): the failing ones named with each
    broken rule; an output that could not be rendered at all fails the check too."""
    checked = {r.spec.name: r.platforms for r in report.outputs if r.platforms is not None}
    if not checked and report.platforms is not None:  # a report without outputs: its one video
        checked = {"video": report.platforms}
    if not checked:  # clip-first (no video composed): nothing to check
        return dg.AssetCheckResult(
            check_name=PLATFORM_CHECK, passed=True, description=f"no video composed ({report.status})",
            metadata={"batch_id": batch.id},
        )
    def label(name: str, profile: str) -> str:
        return f"{name} {profile}" if len(checked) > 1 else profile

    failing = {
        label(name, profile): [str(p) for p in problems]
        for name, platforms in checked.items() for profile, problems in platforms.items() if problems
    }  # fmt: skip
    unrendered = {r.spec.name: r.error for r in report.outputs if r.result is None}
    failing.update({f"{name} not rendered": [str(error)] for name, error in unrendered.items()})
    what = "video" if len(checked) == 1 and not unrendered else f"{len(checked) + len(unrendered)} outputs"
    if failing:
        verb = "fails" if what == "video" else "fail"
        description = f"{what} of batch {batch.id} {verb} " + "; ".join(f"{n}: {', '.join(p)}" for n, p in failing.items())
    elif len(checked) == 1:
        description = f"video of batch {batch.id} meets {', '.join(next(iter(checked.values())))}"
    else:
        description = f"{what} of batch {batch.id} meet their profiles: " + "; ".join(
            f"{name} ({', '.join(platforms)})" for name, platforms in checked.items()
        )
    profiles = sorted({profile for platforms in checked.values() for profile in platforms})
    return dg.AssetCheckResult(
        check_name=PLATFORM_CHECK,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "batch_id": batch.id, "profiles": profiles, "outputs": sorted([*checked, *unrendered]),
            "failing": failing or None,
        },
    )  # fmt: skip
