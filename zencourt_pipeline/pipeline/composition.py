"""Stage 3b: compose the listing video from the normalized clips, publish it, finish the batch, inspect it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, BatchStage, BatchStatus, Job, JobStatus
from zencourt_pipeline.domain import (
    BatchRejected,
    Orientation,
    OutputShape,
    OutputSpec,
    parse_facts,
    parse_outputs,
    primary_output,
)
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.media.validate import Problem
from zencourt_pipeline.pipeline.clip_checks import VideoInspection, inspect_composed
from zencourt_pipeline.pipeline.keys import clip_key
from zencourt_pipeline.pipeline.narration import load_narration
from zencourt_pipeline.pipeline.publishing import OutputPublisher
from zencourt_pipeline.pipeline.renditions import (
    Rendition,
    check_platforms,
    publish_renditions,
    render_renditions,
    unpublish,
)
from zencourt_pipeline.storage.base import Storage, StorageError

if TYPE_CHECKING:
    from zencourt_pipeline.media.templates import Template
    from zencourt_pipeline.media.timeline.narration import Narration


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
    expects_audio: bool = False  # the template has music, or the batch a narration
    # the published primary file against the house rules and each destination it targets: {profile: problems}
    platforms: dict[str, list[Problem]] | None = None
    # every output asked for (the primary first): its render, stored URIs and platform checks, or its error
    outputs: list[Rendition] = field(default_factory=list)
    narration_s: float | None = None  # the batch's narration, when it has one
    music_ducked_db: float | None = None  # how far the primary output's music goes down under the voice (planned)


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

    batch_id = batch.id
    completed = [job for job in jobs if job.status == JobStatus.COMPLETED and job.video_url]
    failed = [job for job in jobs if job.status == JobStatus.FAILED]
    summary = f"{len(failed)} of {len(jobs)} clips failed: " + ", ".join(
        f"{job.id} {job.error_code}" for job in failed
    ) if failed else None
    ended = _end_without_video(db, batch_id, completed, failed, summary, enabled=enabled)
    if ended is not None:
        return ended

    override, orientation = orientation, orientation or batch.orientation
    template = db.templates.resolve_template(batch.workspace_id, template_name if template_name is not None else batch.template)
    db.events.record_stage(batch_id, BatchStage.COMPOSING, clips=len(completed))
    clips, durations = _download_clips(storage, batch_id, completed, work_dir)
    try:
        # an operator's orientation override makes an output of that shape the primary one
        primary, outputs = primary_output(parse_outputs(batch.outputs), OutputShape(orientation), required=override is not None)
        narration = load_narration(storage, batch, work_dir)
        narration_uri = storage.uri(batch.narration_key) if narration is not None and batch.narration_key else None
        # each output is published as soon as it is rendered and passes its platforms: the primary first
        publisher = OutputPublisher(db, storage, batch_id, template.name, completed, narration_uri)
        # the workspace's branding profile with the batch's override (migration 0014), its logo as a file
        profile = db.branding.batch_branding(batch.workspace_id, batch.branding)
        renditions = render_renditions(
            clips, outputs, primary, work_dir, title=batch.title, template=template, facts=parse_facts(batch.facts),
            narration=narration, branding=profile.branding(work_dir / "branding") if profile is not None else None,
            on_rendered=publisher,
        )  # fmt: skip
    except (MediaError, BatchRejected) as exc:
        return _composition_failed(db, batch_id, exc, clips_used=len(completed), clips_failed=len(failed))
    expects_audio = _primary_has_audio(template, primary, narration)
    published = _publish(db, storage, publisher, renditions, summary, work_dir, expects_audio)
    if published is None:
        return CompositionReport(CompositionOutcome.CANCELED, error="batch was canceled during composition")
    report = _completed_report(template, *published, len(completed), len(failed), summary, durations, expects_audio)
    return replace(report, narration_s=narration.duration_s if narration else None, music_ducked_db=_ducked_db(report))


def _composition_failed(
    db: AppDatabase, batch_id: str, exc: MediaError | BatchRejected, *, clips_used: int, clips_failed: int
) -> CompositionReport:
    """The batch failed at composition: a narration the surviving clips cannot hold keeps its own
    code (NARRATION_TOO_LONG), anything else is COMPOSITION_FAILED."""
    code = exc.code if exc.code == ErrorCode.NARRATION_TOO_LONG else ErrorCode.COMPOSITION_FAILED
    error = f"{code}: {exc.message}"
    db.batches.finish_batch(batch_id, BatchStatus.FAILED, error=error, error_code=code)
    return CompositionReport(
        CompositionOutcome.FAILED, clips_used=clips_used, clips_failed=clips_failed, error=error, error_code=code
    )


def _primary_has_audio(template: Template, primary: OutputSpec, narration: Narration | None) -> bool:
    """Whether the primary output has sound: music (an unbranded primary drops music that
    identifies the agent) or a narration (an unbranded primary drops one that identifies the agent)."""
    music = template.music is not None and (primary.branded or not template.music_identifies_agent)
    return music or (narration is not None and (primary.branded or not narration.identifies_agent))


def _ducked_db(report: CompositionReport) -> float | None:
    """The depth of the primary output's music ducking, from its timeline's gain automation."""
    main = report.outputs[0].result if report.outputs else None
    music = main.timeline.music if main is not None and main.timeline.narration is not None else None
    if music is None:
        return None
    gains = [point.db for point in music.gain]
    return round(max(gains) - min(gains), 2)


def _completed_report(
    template: Template, renditions: list[Rendition], inspection: VideoInspection, used: int, failed: int,
    summary: str | None, durations: dict[str, float], expects_audio: bool,
) -> CompositionReport:
    """The report of a published composition: the primary output's keys, URIs and render figures,
    every output with the platform checks of its file."""
    main = renditions[0]
    result = main.result
    assert result is not None  # the primary output is rendered, or the composition failed
    return CompositionReport(
        CompositionOutcome.COMPLETED,
        video_key=main.video_key,
        thumbnail_key=main.thumbnail_key,
        video_uri=main.video_uri,
        thumbnail_uri=main.thumbnail_uri,
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
        expects_audio=expects_audio,
        platforms=main.platforms,
        outputs=renditions,
    )


def _end_without_video(db: AppDatabase, batch_id: str, completed: list[Job], failed: list[Job], summary: str | None,
                       *, enabled: bool) -> CompositionReport | None:
    """The batch's end when nothing is to be composed: canceled, no clip survived, or clip-first."""
    current = db.batches.get_batch(batch_id)
    if current and current.status == BatchStatus.CANCELED:
        return CompositionReport(CompositionOutcome.CANCELED, error="batch was canceled")
    if not completed:
        error = "no clip could be generated" + (f" ({summary})" if summary else "")
        db.batches.finish_batch(batch_id, BatchStatus.FAILED, error=error, error_code=ErrorCode.ALL_CLIPS_FAILED)
        return CompositionReport(
            CompositionOutcome.FAILED, clips_failed=len(failed), error=error, error_code=ErrorCode.ALL_CLIPS_FAILED
        )
    if not enabled:
        db.batches.finish_batch(batch_id, BatchStatus.COMPLETED, error=summary)
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


def _publish(
    db: AppDatabase, storage: Storage, publisher: OutputPublisher, renditions: list[Rendition], summary: str | None,
    work_dir: Path, expects_audio: bool,
) -> tuple[list[Rendition], VideoInspection] | None:
    """Store every rendered output not published yet (`publisher` published those that passed their
    platforms as they were rendered) under its final keys and finish the batch with them all (the
    primary in `video_gen_batch.video_url`, each in `video_gen_outputs`, `batch.completed` last);
    then inspect the primary. None when the batch was canceled meanwhile (nothing stays published
    then: the cancel dropped the rows published early, their objects are taken down here)."""
    batch_id, template_name = publisher.batch_id, publisher.template
    if db.batches.get_batch(batch_id).status == BatchStatus.CANCELED:
        unpublish(storage, renditions)
        return None
    publisher.record_uploading()
    renditions = publish_renditions(storage, batch_id, template_name, renditions, publisher.completed, publisher.narration_uri)
    main = renditions[0]
    rows = [rendition.row(template_name) for rendition in renditions]
    if not db.batches.finish_batch(
        batch_id, BatchStatus.COMPLETED, video_url=main.video_uri, thumbnail_url=main.thumbnail_uri, error=summary,
        outputs=rows,
    ):  # fmt: skip
        unpublish(storage, renditions)  # canceled between the check and the publish: take them back down
        return None
    inspection = _inspect_published(storage, main.result, main.thumbnail_key, work_dir, expects_audio)
    return check_platforms(renditions), inspection


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


def output_rows(renditions: list[Rendition]) -> list[dict]:
    """The outputs as table rows (Dagster metadata): shape, size, branding, status, file figures and
    the size of the clips each was made from (`source_resolution`: a 1080p output over 1280x720
    clips is an upscale)."""
    return [
        {
            "output": r.spec.name, "primary": r.primary, "status": str(r.status),
            "duration_s": r.result.info.duration if r.result else None,
            "bytes": r.result.info.size_bytes if r.result else None,
            "source_resolution": r.source_resolution if r.result else None,
            "render_strategy": ("copy" if r.copied else r.result.strategy) if r.result else None,
            "platforms_failing": ", ".join(p for p, problems in (r.platforms or {}).items() if problems) or None,
            "video_uri": r.video_uri, "error": r.error,
        }
        for r in renditions
    ]  # fmt: skip
