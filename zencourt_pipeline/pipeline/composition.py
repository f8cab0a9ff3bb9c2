"""Stage 3: normalize the generated clips, compose the listing video, publish, finish the batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, BatchStatus, Job, JobStatus
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.frames import ORIENTATION_SIZES
from zencourt_pipeline.pipeline.keys import clip_key, clip_thumbnail_key, video_key, video_thumbnail_key
from zencourt_pipeline.storage.base import Storage, StorageError


@dataclass(frozen=True)
class ClipResult:
    job_id: str
    room_name: str | None
    status: str  # completed | failed | skipped
    duration_s: float | None = None
    size_bytes: int | None = None
    clip_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None


def planned_keyframes(batch: Batch, jobs: list[Job], *, width: int, height: int) -> dict[str, list[int]]:
    """Per job, where its normalized clip needs keyframes for the batch's composition as planned
    now (its template, title and the clips still expected) so that smart rendering re-encodes
    only the frames the composition changes. Empty when it cannot be planned (then smart
    rendering copies less or falls back to the full render: nothing breaks)."""
    from zencourt_pipeline.media.compose import ClipInput, clip_keyframes
    from zencourt_pipeline.media.templates import load_template

    expected = [
        job for job in jobs
        if (job.status == JobStatus.COMPLETED and job.video_url) or (not job.terminal and job.raw_clip_key)
    ]  # fmt: skip
    if not expected:
        return {}
    try:
        template = load_template(batch.template)
        clips = [ClipInput(Path(job.id), float(job.duration_seconds), job.room_name) for job in expected]
        frames = clip_keyframes(clips, width=width, height=height, title=batch.title, template=template)
    except MediaError:
        return {}
    return {job.id: cuts for job, cuts in zip(expected, frames, strict=True)}


def normalize_outputs(
    db: AppDatabase, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path
) -> list[ClipResult]:
    """Normalize every stored raw clip (in parallel, up to the core count) and publish it."""
    from zencourt_pipeline.media.normalize import normalize_many
    from zencourt_pipeline.media.thumbnails import extract_thumbnail

    width, height = ORIENTATION_SIZES[batch.orientation]
    results: list[ClipResult] = []
    todo: list[Job] = []
    items = []
    for job in jobs:
        if job.terminal or not job.raw_clip_key:
            results.append(ClipResult(job.id, job.room_name, "skipped", error_code=job.error_code))
            continue
        try:
            raw = storage.get_file(job.raw_clip_key, work_dir / f"{job.id}.raw.mp4")
        except StorageError as exc:
            db.fail_job(job.id, exc.code, exc.message)
            results.append(ClipResult(job.id, job.room_name, "failed", error_code=exc.code))
            continue
        todo.append(job)
        items.append((raw, work_dir / f"{job.id}.clip.mp4", float(job.duration_seconds)))
    if items:  # plan the keyframes only when there is something to normalize
        keyframes = planned_keyframes(batch, jobs, width=width, height=height)
        items = [(*item, keyframes.get(job.id, [])) for job, item in zip(todo, items, strict=True)]
    outcomes = normalize_many(items, width=width, height=height, max_workers=os.cpu_count() or 2) if items else []
    for job, (_raw, clip_path, *_rest), outcome in zip(todo, items, outcomes, strict=True):
        if isinstance(outcome, MediaError):
            db.fail_job(job.id, ErrorCode.NORMALIZE_FAILED, outcome.message)
            results.append(
                ClipResult(
                    job.id, job.room_name, "failed", error_code=ErrorCode.NORMALIZE_FAILED, error_message=outcome.message
                )
            )
            continue
        try:
            thumb = extract_thumbnail(clip_path, work_dir / f"{job.id}.thumb.jpg", at_s=min(1.0, outcome.duration / 2))
            key = clip_key(batch.id, job.id)
            video_uri = storage.put_file(key, clip_path, "video/mp4")
            thumb_uri = storage.put_file(clip_thumbnail_key(batch.id, job.id), thumb, "image/jpeg")
        except (MediaError, StorageError) as exc:
            db.fail_job(job.id, exc.code, exc.message)
            results.append(ClipResult(job.id, job.room_name, "failed", error_code=exc.code, error_message=exc.message))
            continue
        db.complete_job(job.id, video_uri, thumb_uri)
        results.append(
            ClipResult(
                job.id, job.room_name, "completed", outcome.duration, outcome.size_bytes, key
            )
        )
    return results


@dataclass(frozen=True)
class CompositionReport:
    status: str  # completed | failed | skipped (clip-first) | canceled
    video_key: str | None = None
    thumbnail_key: str | None = None
    video_uri: str | None = None
    thumbnail_uri: str | None = None
    duration_s: float | None = None
    planned_duration_s: float | None = None
    size_bytes: int | None = None
    clips_used: int = 0
    clips_failed: int = 0
    width: int | None = None
    height: int | None = None
    template: str | None = None
    error: str | None = None
    local_thumbnail: Path | None = None
    render_strategy: str | None = None  # smart (copied + re-encoded pieces) | full
    frames_copied: int = 0  # frames stream-copied from the normalized clips (smart)
    render_note: str | None = None  # why smart rendering was not used, when it was considered


def compose_batch(
    db: AppDatabase,
    storage: Storage,
    batch: Batch,
    jobs: list[Job],
    work_dir: Path,
    *,
    enabled: bool = True,
    template_name: str | None = None,
    orientation: str | None = None,
) -> CompositionReport:
    """Compose the completed clips in sort order and finish the batch.

    Batch end states: `completed` with a video when at least one clip composed (failed clips
    are listed in `error`, each job keeps its own error); `failed` when no clip survived;
    `completed` without a video when ENABLE_FINAL_COMPOSITION is off (clip-first).
    """
    from zencourt_pipeline.media.compose import ClipInput, compose_video
    from zencourt_pipeline.media.templates import load_template

    batch_id = batch.id
    current = db.get_batch(batch_id)
    if current and current.status == BatchStatus.CANCELED:
        return CompositionReport("canceled", error="batch was canceled")
    completed = [job for job in jobs if job.status == JobStatus.COMPLETED and job.video_url]
    failed = [job for job in jobs if job.status == JobStatus.FAILED]
    summary = f"{len(failed)} of {len(jobs)} clips failed: " + ", ".join(
        f"{job.id} {job.error_code}" for job in failed
    ) if failed else None
    if not completed:
        error = "no clip could be generated" + (f" ({summary})" if summary else "")
        db.finish_batch(batch_id, BatchStatus.FAILED, error=error, error_code=ErrorCode.ALL_CLIPS_FAILED)
        return CompositionReport("failed", clips_failed=len(failed), error=error)
    if not enabled:
        db.finish_batch(batch_id, BatchStatus.COMPLETED, error=summary)
        return CompositionReport("skipped", clips_used=len(completed), clips_failed=len(failed), error=summary)

    orientation = orientation or batch.orientation
    template = load_template(template_name if template_name is not None else batch.template)
    width, height = ORIENTATION_SIZES[orientation]
    clips = []
    for job in completed:
        key = storage.key_from_uri(job.video_url) or clip_key(batch_id, job.id)
        path = storage.get_file(key, work_dir / f"{job.id}.mp4")
        clips.append(ClipInput(path=path, duration_s=float(job.duration_seconds), caption=job.room_name))
    output = work_dir / "listing.mp4"
    thumbnail = work_dir / "listing.jpg"
    try:
        result = compose_video(
            clips,
            output,
            width=width,
            height=height,
            title=batch.title,
            template=template,
            thumbnail_dest=thumbnail,
            work_dir=work_dir,
        )
    except MediaError as exc:
        error = f"{ErrorCode.COMPOSITION_FAILED}: {exc.message}"
        db.finish_batch(batch_id, BatchStatus.FAILED, error=error, error_code=ErrorCode.COMPOSITION_FAILED)
        return CompositionReport("failed", clips_used=len(completed), clips_failed=len(failed), error=error)
    v_key = video_key(batch_id, orientation, template.name)
    t_key = video_thumbnail_key(batch_id, orientation, template.name)
    if db.get_batch(batch_id).status == BatchStatus.CANCELED:
        return CompositionReport("canceled", error="batch was canceled during composition")
    thumb_uri = storage.put_file(t_key, result.thumbnail_path, "image/jpeg") if result.thumbnail_path else None
    video_uri = storage.put_file(v_key, result.path, "video/mp4")
    if not db.finish_batch(batch_id, BatchStatus.COMPLETED, video_url=video_uri, thumbnail_url=thumb_uri, error=summary):
        # canceled between the check and the publish: take the objects back down
        storage.delete(v_key)
        storage.delete(t_key)
        return CompositionReport("canceled", error="batch was canceled during composition")
    return CompositionReport(
        "completed",
        video_key=v_key,
        thumbnail_key=t_key if thumb_uri else None,
        video_uri=video_uri,
        thumbnail_uri=thumb_uri,
        duration_s=result.info.duration,
        planned_duration_s=result.planned_duration_s,
        size_bytes=result.info.size_bytes,
        clips_used=len(completed),
        clips_failed=len(failed),
        width=result.info.width,
        height=result.info.height,
        template=template.name,
        error=summary,
        local_thumbnail=result.thumbnail_path,
        render_strategy=result.strategy,
        frames_copied=result.copied_frames,
        render_note=result.strategy_note,
    )
