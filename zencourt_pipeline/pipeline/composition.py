"""Stage 3b: compose the listing video from the normalized clips, publish it, finish the batch, inspect it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, BatchStage, BatchStatus, Job, JobStatus
from zencourt_pipeline.domain import BatchRejected, Orientation, parse_facts
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.media.frames import ORIENTATION_SIZES
from zencourt_pipeline.media.profiles import targets
from zencourt_pipeline.media.validate import Problem, validate_targets
from zencourt_pipeline.pipeline.clip_checks import VideoInspection, inspect_composed
from zencourt_pipeline.pipeline.keys import (
    clip_key,
    video_key,
    video_subtitles_key,
    video_thumbnail_key,
    video_timeline_key,
)
from zencourt_pipeline.storage.base import Storage, StorageError

if TYPE_CHECKING:
    from zencourt_pipeline.media.compose import CompositionResult
    from zencourt_pipeline.media.templates import Template


class CompositionOutcome(StrEnum):
    """How a batch's composition ended."""

    COMPLETED = "completed"  # the video is published, the batch completed
    FAILED = "failed"  # no clip survived, or the composition failed: the batch failed
    SKIPPED = "skipped"  # clip-first (ENABLE_FINAL_COMPOSITION off): the batch completed without a video
    CANCELED = "canceled"  # the batch was canceled (before or during composition)

    @property
    def ended_badly(self) -> bool:
        """True when the batch ended without what was asked for (failed or canceled): the run fails."""
        return self in (CompositionOutcome.FAILED, CompositionOutcome.CANCELED)


@dataclass(frozen=True)
class CompositionReport:
    status: CompositionOutcome
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
    error_code: ErrorCode | None = None  # why the batch failed: ALL_CLIPS_FAILED or COMPOSITION_FAILED
    local_thumbnail: Path | None = None
    render_strategy: str | None = None  # smart (copied + re-encoded pieces) | full
    frames_copied: int = 0  # frames stream-copied from the normalized clips (smart)
    render_note: str | None = None  # why smart rendering was not used, when it was considered
    clip_durations: dict[str, float] = field(default_factory=dict)  # job id -> its normalized clip's duration
    inspection: VideoInspection | None = None  # the published video (video_matches_plan), when one was composed
    expects_audio: bool = False  # the template has music
    # the published file against the house rules and each destination it targets: {profile: problems}
    platforms: dict[str, list[Problem]] | None = None


def compose_batch(
    db: AppDatabase,
    storage: Storage,
    batch: Batch,
    jobs: list[Job],
    work_dir: Path,
    *,
    enabled: bool = True,
    template_name: str | None = None,
    orientation: Orientation | None = None,
) -> CompositionReport:
    """Compose the completed clips in sort order and finish the batch.

    Batch end states: `completed` with a video when at least one clip composed (failed clips
    are listed in `error`, each job keeps its own error); `failed` when no clip survived;
    `completed` without a video when ENABLE_FINAL_COMPOSITION is off (clip-first).
    """
    from zencourt_pipeline.db.templates import resolve_template
    from zencourt_pipeline.media.compose import compose_video

    batch_id = batch.id
    completed = [job for job in jobs if job.status == JobStatus.COMPLETED and job.video_url]
    failed = [job for job in jobs if job.status == JobStatus.FAILED]
    summary = f"{len(failed)} of {len(jobs)} clips failed: " + ", ".join(
        f"{job.id} {job.error_code}" for job in failed
    ) if failed else None
    ended = _end_without_video(db, batch_id, completed, failed, summary, enabled=enabled)
    if ended is not None:
        return ended

    orientation = orientation or batch.orientation
    template = resolve_template(db, batch.workspace_id, template_name if template_name is not None else batch.template)
    width, height = ORIENTATION_SIZES[orientation]
    db.record_stage(batch_id, BatchStage.COMPOSING, clips=len(completed))
    clips, durations = _download_clips(storage, batch_id, completed, work_dir)
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
            facts=parse_facts(batch.facts),
        )
    except (MediaError, BatchRejected) as exc:
        error = f"{ErrorCode.COMPOSITION_FAILED}: {exc.message}"
        db.finish_batch(batch_id, BatchStatus.FAILED, error=error, error_code=ErrorCode.COMPOSITION_FAILED)
        return CompositionReport(
            CompositionOutcome.FAILED, clips_used=len(completed), clips_failed=len(failed), error=error,
            error_code=ErrorCode.COMPOSITION_FAILED,
        )
    expects_audio = template.music is not None
    timeline_file = _timeline_file(result, completed, work_dir)
    published = _publish(db, storage, batch_id, orientation, template.name, result, summary, work_dir, expects_audio, timeline_file)
    if published is None:
        return CompositionReport(CompositionOutcome.CANCELED, error="batch was canceled during composition")
    return _completed_report(result, template, published, len(completed), len(failed), summary, durations)


def _completed_report(
    result: CompositionResult, template: Template, published: tuple, used: int, failed: int, summary: str | None, durations: list[float]
) -> CompositionReport:
    """The report of a published composition: its keys and URIs, the render's figures, the
    platform checks of the file itself."""
    v_key, t_key, video_uri, thumb_uri, inspection = published
    return CompositionReport(
        CompositionOutcome.COMPLETED,
        video_key=v_key,
        thumbnail_key=t_key if thumb_uri else None,
        video_uri=video_uri,
        thumbnail_uri=thumb_uri,
        duration_s=result.info.duration,
        planned_duration_s=result.planned_duration_s,
        size_bytes=result.info.size_bytes,
        clips_used=used,
        clips_failed=failed,
        width=result.info.width,
        height=result.info.height,
        template=template.name,
        error=summary,
        local_thumbnail=result.thumbnail_path,
        render_strategy=result.strategy,
        frames_copied=result.copied_frames,
        render_note=result.strategy_note,
        clip_durations=durations,
        inspection=inspection,
        expects_audio=template.music is not None,
        platforms=validate_targets(result.path, targets(result.info.width, result.info.height)),
    )


def _end_without_video(db: AppDatabase, batch_id: str, completed: list[Job], failed: list[Job], summary: str | None,
                       *, enabled: bool) -> CompositionReport | None:
    """The batch's end when nothing is to be composed: canceled, no clip survived, or clip-first."""
    current = db.get_batch(batch_id)
    if current and current.status == BatchStatus.CANCELED:
        return CompositionReport(CompositionOutcome.CANCELED, error="batch was canceled")
    if not completed:
        error = "no clip could be generated" + (f" ({summary})" if summary else "")
        db.finish_batch(batch_id, BatchStatus.FAILED, error=error, error_code=ErrorCode.ALL_CLIPS_FAILED)
        return CompositionReport(
            CompositionOutcome.FAILED, clips_failed=len(failed), error=error, error_code=ErrorCode.ALL_CLIPS_FAILED
        )
    if not enabled:
        db.finish_batch(batch_id, BatchStatus.COMPLETED, error=summary)
        return CompositionReport(CompositionOutcome.SKIPPED, clips_used=len(completed), clips_failed=len(failed), error=summary)
    return None


def _download_clips(storage: Storage, batch_id: str, completed: list[Job], work_dir: Path):
    """The completed jobs' normalized clips as compose inputs, and each clip's measured duration."""
    from zencourt_pipeline.media.listing import clip_input
    from zencourt_pipeline.pipeline.intake import listing_clip

    clips, durations = [], {}
    for job in completed:
        key = storage.key_from_uri(job.video_url) or clip_key(batch_id, job.id)
        path = storage.get_file(key, work_dir / f"{job.id}.mp4")
        clips.append(clip_input(listing_clip(job), path))
        try:
            durations[job.id] = probe(path).duration
        except MediaError:
            pass
    return clips, durations


def _timeline_file(result: CompositionResult, completed: list[Job], work_dir: Path) -> Path:
    """The rendered timeline as JSON, each clip's source the storage URI of its normalized clip
    (the clips are composed in the order of `completed`), so that it re-renders the video."""
    timeline = result.timeline
    sources = [job.video_url or clip.source for job, clip in zip(completed, timeline.clips, strict=True)]
    stored = timeline.model_copy(update={"clips": [c.model_copy(update={"source": s}) for c, s in zip(timeline.clips, sources, strict=True)]})
    path = work_dir / "listing.timeline.json"
    path.write_text(stored.to_json(), encoding="utf-8")
    return path


SUBTITLE_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


def _subtitle_files(result: CompositionResult, work_dir: Path) -> dict[str, Path]:
    """The SRT and WebVTT sidecars of the rendered timeline's texts, by kind (`srt`, `vtt`)."""
    from zencourt_pipeline.media.timeline.subtitles import to_srt, to_vtt

    files = {}
    for kind, render in (("srt", to_srt), ("vtt", to_vtt)):
        files[kind] = work_dir / f"listing.{kind}"
        files[kind].write_text(render(result.timeline), encoding="utf-8")
    return files


def _publish(db: AppDatabase, storage: Storage, batch_id: str, orientation: Orientation, template_name: str, result,
             summary: str | None, work_dir: Path, expects_audio: bool, timeline_file: Path):
    """Store the video, its thumbnail, its timeline JSON and its SRT/WebVTT sidecars (every timed
    text) under their final keys and finish the batch; None when the batch was canceled meanwhile
    (nothing stays published then)."""
    v_key = video_key(batch_id, orientation, template_name)
    t_key = video_thumbnail_key(batch_id, orientation, template_name)
    tl_key = video_timeline_key(batch_id, orientation, template_name)
    if db.get_batch(batch_id).status == BatchStatus.CANCELED:
        return None
    db.record_stage(batch_id, BatchStage.UPLOADING)
    thumb_uri = storage.put_file(t_key, result.thumbnail_path, "image/jpeg") if result.thumbnail_path else None
    storage.put_file(tl_key, timeline_file, "application/json")
    sub_keys = [video_subtitles_key(batch_id, orientation, template_name, kind) for kind in SUBTITLE_TYPES]
    for key, (kind, path) in zip(sub_keys, _subtitle_files(result, work_dir).items(), strict=True):
        storage.put_file(key, path, SUBTITLE_TYPES[kind])
    video_uri = storage.put_file(v_key, result.path, "video/mp4")
    if not db.finish_batch(batch_id, BatchStatus.COMPLETED, video_url=video_uri, thumbnail_url=thumb_uri, error=summary):
        # canceled between the check and the publish: take the objects back down
        storage.delete(v_key)
        storage.delete(t_key)
        storage.delete(tl_key)
        for key in sub_keys:
            storage.delete(key)
        return None
    inspection = _inspect_published(storage, result, t_key if thumb_uri else None, work_dir, expects_audio)
    return v_key, t_key, video_uri, thumb_uri, inspection


def _inspect_published(storage: Storage, result, thumbnail_key: str | None, work_dir: Path, expects_audio: bool) -> VideoInspection:
    """The video just published (its local file) against its plan, with the thumbnail as stored."""
    thumbnail = None
    try:
        if thumbnail_key and storage.exists(thumbnail_key):
            thumbnail = storage.get_file(thumbnail_key, work_dir / "check.jpg")
    except StorageError as exc:
        return VideoInspection(problems=[f"published thumbnail not readable: {exc.code}: {exc.message}"])
    return inspect_composed(
        result.path, planned_duration_s=result.planned_duration_s or 0.0, expects_audio=expects_audio, thumbnail=thumbnail
    )
