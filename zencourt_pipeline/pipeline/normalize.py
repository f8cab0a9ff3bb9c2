"""Stage 3a: normalize the generated and the given clips (one ffmpeg pass each; a given clip trimmed
to its in/out points), publish them, inspect what
composition will use, and block the batch when a clip is unusable. `normalize_batch` is the
stage `normalized_clips` calls; it returns everything the asset reports: per-clip results, the
inspections of the `clips_usable` check, the local thumbnails (with their files) and the block."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from zencourt_pipeline.db.batches import BatchRepository
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, BatchStage, Job, JobStatus
from zencourt_pipeline.domain import BatchRejected, JobSource, parse_facts
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import VideoInfo
from zencourt_pipeline.pipeline.clip_checks import ClipInspection, inspect_clip
from zencourt_pipeline.pipeline.generation import batch_clip_frame
from zencourt_pipeline.pipeline.given_clips import clip_points
from zencourt_pipeline.pipeline.keys import clip_key, clip_thumbnail_key
from zencourt_pipeline.pipeline.results import NOT_A_COLUMN
from zencourt_pipeline.storage.base import Storage, StorageError


class NormalizeOutcome(StrEnum):
    """What normalizing did with one job's generated clip."""

    COMPLETED = "completed"  # normalized and published: the job is completed
    FAILED = "failed"  # the job failed (its error code on the row)
    SKIPPED = "skipped"  # the job had already ended, or has no generated clip


@dataclass(frozen=True)
class ClipResult:
    job_id: str
    room_name: str | None
    status: NormalizeOutcome
    duration_s: float | None = None
    size_bytes: int | None = None
    clip_key: str | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    clip_path: Path | None = field(default=None, metadata=NOT_A_COLUMN)  # the normalized clip in the work dir
    thumbnail_path: Path | None = field(default=None, metadata=NOT_A_COLUMN)


def planned_keyframes(batch: Batch, jobs: list[Job], *, width: int, height: int) -> dict[str, list[int]]:
    """Per job, where its normalized clip needs keyframes for the batch's composition as planned
    now (its template, title and the clips still expected, those still generating included: a
    clip normalized early, clip-first, is cut where the final composition cuts it) so that smart
    rendering re-encodes only the frames the composition changes. Empty when it cannot be planned
    (then smart rendering copies less or falls back to the full render: nothing breaks)."""
    from zencourt_pipeline.media.compose import clip_keyframes
    from zencourt_pipeline.media.listing import clip_input
    from zencourt_pipeline.media.templates import load_template
    from zencourt_pipeline.pipeline.intake import listing_clip

    expected = [
        job for job in jobs
        if (job.status == JobStatus.COMPLETED and job.video_url) or not job.terminal
    ]  # fmt: skip
    if not expected:
        return {}
    try:
        template = load_template(batch.template)
        clips = [clip_input(listing_clip(job), Path(job.id)) for job in expected]
        facts = parse_facts(batch.facts)
        frames = clip_keyframes(clips, width=width, height=height, title=batch.title, template=template, facts=facts)
    except (MediaError, BatchRejected, ValueError):
        return {}
    return {job.id: cuts for job, cuts in zip(expected, frames, strict=True)}


def normalize_outputs(
    db: AppDatabase, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path
) -> list[ClipResult]:
    """Normalize every stored raw clip (in parallel, up to the core count) and publish it: fetch
    the raw clips, plan their keyframes, normalize them all, then publish each (clip, thumbnail,
    job completed) or fail its job."""
    from zencourt_pipeline.media.normalize import normalize_many

    width, height = batch_clip_frame(batch)
    results, todo, items = _fetch_raw_clips(db.batches, storage, jobs, work_dir)
    if items:  # plan the keyframes only when there is something to normalize
        db.events.record_stage(batch.id, BatchStage.NORMALIZING, clips=len(items))
        keyframes = planned_keyframes(batch, jobs, width=width, height=height)
        # a given clip starts at its in point (`clip_points`); a generated one at its first frame
        items = [
            (*item, keyframes.get(job.id, []), clip_points(job)[0] if job.source == JobSource.CLIP else 0.0)
            for job, item in zip(todo, items, strict=True)
        ]
    outcomes = normalize_many(items, width=width, height=height, max_workers=os.cpu_count() or 2) if items else []
    for job, (_raw, clip_path, *_rest), outcome in zip(todo, items, outcomes, strict=True):
        results.append(_publish_clip(db.batches, storage, batch, job, clip_path, outcome, work_dir))
    return results


def _fetch_raw_clips(
    batches: BatchRepository, storage: Storage, jobs: list[Job], work_dir: Path
) -> tuple[list[ClipResult], list[Job], list[tuple]]:
    """(the results of the jobs with nothing to normalize, the jobs to normalize, their
    `(raw clip, normalized clip, seconds)` items). A raw clip storage no longer has fails its job;
    storage failing raises (the step is retried, the job stays open)."""
    results: list[ClipResult] = []
    todo: list[Job] = []
    items: list[tuple] = []
    for job in jobs:
        if job.terminal or not job.raw_clip_key:
            results.append(ClipResult(job.id, job.room_name, NormalizeOutcome.SKIPPED, error_code=job.error_code))
            continue
        try:
            raw = storage.get_file(job.raw_clip_key, work_dir / f"{job.id}.raw.mp4")
        except StorageError as exc:
            if storage.exists(job.raw_clip_key):
                raise  # storage is failing, not the clip: the step is retried, the job stays open
            batches.fail_job(job.id, exc.code, exc.message)
            results.append(ClipResult(job.id, job.room_name, NormalizeOutcome.FAILED, error_code=exc.code))
            continue
        todo.append(job)
        items.append((raw, work_dir / f"{job.id}.clip.mp4", job.seconds))
    return results, todo, items


def _publish_clip(
    batches: BatchRepository, storage: Storage, batch: Batch, job: Job, clip_path: Path, outcome: VideoInfo | MediaError,
    work_dir: Path,
) -> ClipResult:
    """One normalized clip (or the MediaError that stopped it) published with its thumbnail and
    its job completed, or its job failed with the reason."""
    from zencourt_pipeline.media.thumbnails import extract_thumbnail

    if isinstance(outcome, MediaError):
        batches.fail_job(job.id, ErrorCode.NORMALIZE_FAILED, outcome.message)
        return ClipResult(
            job.id, job.room_name, NormalizeOutcome.FAILED, error_code=ErrorCode.NORMALIZE_FAILED, error_message=outcome.message
        )
    try:
        thumb = extract_thumbnail(clip_path, work_dir / f"{job.id}.thumb.jpg", at_s=min(1.0, outcome.duration / 2))
    except MediaError as exc:
        batches.fail_job(job.id, exc.code, exc.message)
        return ClipResult(job.id, job.room_name, NormalizeOutcome.FAILED, error_code=exc.code, error_message=exc.message)
    # a failed upload is the storage's fault, not the clip's: it raises, the step is retried
    # (and the compose run re-attempted), and the job stays open with its raw clip
    key = clip_key(batch.id, job.id)
    video_uri = storage.put_file(key, clip_path, "video/mp4")
    thumb_uri = storage.put_file(clip_thumbnail_key(batch.id, job.id), thumb, "image/jpeg")
    batches.complete_job(job.id, video_uri, thumb_uri)
    return ClipResult(
        job.id, job.room_name, NormalizeOutcome.COMPLETED, outcome.duration, outcome.size_bytes, key,
        clip_path=clip_path, thumbnail_path=thumb,
    )  # fmt: skip


@dataclass(frozen=True)
class NormalizeResult:
    clips: list[ClipResult]  # one per job: completed, failed or skipped
    jobs: list[Job]  # the batch's jobs after normalizing
    inspections: dict[str, ClipInspection]  # job id -> every completed clip composition would use
    thumbnails: dict[str, Path]  # job id -> the completed clip's thumbnail, as a local file
    blocked: ErrorCode | None = None  # CLIP_CHECK_FAILED when a clip is unusable: composition waits

    def count(self, outcome: NormalizeOutcome) -> int:
        """How many clips ended `outcome`."""
        return sum(1 for clip in self.clips if clip.status == outcome)

    @property
    def failing(self) -> dict[str, ClipInspection]:
        """The inspections that found a problem (job id -> inspection): they block the batch."""
        return {job_id: inspection for job_id, inspection in self.inspections.items() if not inspection.passed}


def normalize_batch(db: AppDatabase, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path) -> NormalizeResult:
    """Normalize's state changes in order: normalize and publish the batch's raw clips (jobs
    completed or failed), inspect every completed clip (the file just written, else the stored
    copy; up to the core count at once: the inspections are at the batch's tail, issue 13 point 7)
    with its thumbnail, then block the batch while a clip is unusable (unblock it when none is)."""
    clips = normalize_outputs(db, storage, batch, jobs, work_dir)
    jobs = db.batches.get_jobs(batch.id)
    written = {clip.job_id: clip for clip in clips if clip.status == NormalizeOutcome.COMPLETED}
    width, height = batch_clip_frame(batch)
    inspections: dict[str, ClipInspection] = {}
    thumbnails: dict[str, Path] = {}
    checking: dict[str, Future[ClipInspection]] = {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="inspect") as pool:
        for job in jobs:
            if job.status != JobStatus.COMPLETED or not job.video_url:
                continue
            clip = written.get(job.id)
            key = storage.key_from_uri(job.video_url) or clip_key(batch.id, job.id)
            try:
                local = clip.clip_path if clip else storage.get_file(key, work_dir / f"{job.id}.check.mp4")
            except StorageError as exc:
                if storage.exists(key):
                    raise  # storage is failing, not the clip: retry the step rather than block the batch
                inspections[job.id] = ClipInspection(problems=[f"not downloadable: {exc.code}"])
                continue
            checking[job.id] = pool.submit(inspect_clip, local, expected_duration_s=job.seconds, width=width, height=height)
            thumbnail = _thumbnail(storage, batch, job, clip, work_dir)
            if thumbnail is not None:
                thumbnails[job.id] = thumbnail
        inspections.update({job_id: future.result() for job_id, future in checking.items()})
    inspections = {job.id: inspections[job.id] for job in jobs if job.id in inspections}  # in job order
    result = NormalizeResult(clips, jobs, inspections, thumbnails)
    # a blocked batch waits for an operator to regenerate the clips: it shows why (blocked_reason)
    # and fails CLIP_CHECK_FAILED at its deadline (pipeline/liveness.py)
    blocked = ErrorCode.CLIP_CHECK_FAILED if result.failing else None
    db.liveness.block_batch(batch.id, blocked)
    return replace(result, blocked=blocked)


def _thumbnail(storage: Storage, batch: Batch, job: Job, clip: ClipResult | None, work_dir: Path) -> Path | None:
    if clip is not None and clip.thumbnail_path is not None:
        return clip.thumbnail_path
    key = (job.thumbnail_url and storage.key_from_uri(job.thumbnail_url)) or clip_thumbnail_key(batch.id, job.id)
    try:
        return storage.get_file(key, work_dir / f"{job.id}.gallery.jpg")
    except StorageError:
        return None
