"""Stage 1: check the batch, fetch every listing photo and prepare it (one bad photo fails one job).

`take_in_batch` is the stage `listing_photos` calls: it makes the batch's state changes in order
(reject it, start it, take the photos in, fail it when no photo is usable) and returns an
`IntakeReport` the asset maps to its materialization, check or failure."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from zencourt_pipeline.db.batches import BatchRepository
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, BatchStatus, Job
from zencourt_pipeline.db.templates import TemplateRepository
from zencourt_pipeline.domain import (
    BatchRejected,
    JobSource,
    batch_problem,
    focus_problem,
    instructions_problem,
    job_problem,
    parse_facts,
    parse_outputs,
    prompt_problem,
)
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.net.fetch import FetchError, FetchPolicy, check_callback_url, fetch_url
from zencourt_pipeline.pipeline.clip_checks import (
    PhotoInspection,
    PhotoProblem,
    PhotoProblemKind,
    inspect_photo,
)
from zencourt_pipeline.pipeline.given_clips import ClipOutcome, GivenClipResult, ingest_given_clips
from zencourt_pipeline.pipeline.keys import photo_key
from zencourt_pipeline.pipeline.narration import ingest_narration, time_clips_to_narration
from zencourt_pipeline.pipeline.quota import QuotaLimits, QuotaUsage, enforce_quota
from zencourt_pipeline.pipeline.results import NOT_A_COLUMN
from zencourt_pipeline.providers.chain import default_prompt
from zencourt_pipeline.storage.base import Storage, StorageError, storage_is_failing

if TYPE_CHECKING:
    from zencourt_pipeline.media.listing import ListingClip
    from zencourt_pipeline.media.templates import Template

__all__ = ["BatchRejected"]  # defined in `domain` (the batch rules), imported from here as well

NO_USABLE_PHOTO_MESSAGE = "no usable photo (or given clip) in the batch"


class PhotoOutcome(StrEnum):
    """What intake did with one job's photo."""

    READY = "ready"  # prepared and stored (now, or by an earlier run)
    FAILED = "failed"  # unusable: the job failed with the photo's error code
    SKIPPED = "skipped"  # the job had already ended


class IntakeStatus(StrEnum):
    """How a batch's intake ended."""

    TAKEN_IN = "taken_in"  # at least one photo is ready: generation goes on
    REJECTED = "rejected"  # refused before any download (rules, template, quota): the batch failed
    NO_USABLE_PHOTO = "no_usable_photo"  # every photo unusable: the batch failed NO_USABLE_PHOTO


def validate_batch(
    batch: Batch, jobs: list[Job], template: Template | None = None, policy: FetchPolicy | None = None
) -> None:
    """Refuse a batch that cannot produce a video, before any download or provider call (the
    rules of `domain`, the ones the HTTP models apply to a request body: its instructions and
    callback URL (checked with `policy`) too, and `media.listing`'s check of its template
    (`template`: the batch's, resolved; None: by its name among the bundled ones), facts,
    captions and transitions)."""
    from zencourt_pipeline.media.listing import listing_problem

    problem = batch_problem(batch.id, len(jobs), batch.orientation) or instructions_problem(batch.instructions)
    if problem:
        raise BatchRejected(ErrorCode.INVALID_INPUT, problem)
    if batch.callback_url is not None:
        try:
            check_callback_url(batch.callback_url, policy or FetchPolicy())
        except FetchError as exc:
            raise BatchRejected(ErrorCode.INVALID_INPUT, f"callback_url: {exc.message}") from None
    for job in jobs:
        problem = focus_problem(job.focus_x, job.focus_y)
        if problem:
            raise BatchRejected(ErrorCode.INVALID_INPUT, f"job {job.id}: {problem}")
    facts = parse_facts(batch.facts)
    outputs = parse_outputs(batch.outputs)
    problem = listing_problem(
        template=template or batch.template, orientation=batch.orientation, title=batch.title, facts=facts,
        clips=[listing_clip(job) for job in jobs if not job.terminal] or [listing_clip(job) for job in jobs],
        outputs=outputs,
    )  # fmt: skip
    if problem:
        raise BatchRejected(ErrorCode.INVALID_INPUT, problem.message)


def batch_template(templates: TemplateRepository, batch: Batch) -> Template:
    """The template the batch names: bundled, else its workspace's own; BatchRejected(INVALID_INPUT)
    for a name neither knows."""

    try:
        return templates.resolve_template(batch.workspace_id, batch.template)
    except MediaError as exc:
        raise BatchRejected(exc.code, exc.message) from exc


def listing_clip(job: Job) -> ListingClip:
    """What `media.listing` checks and composes of a job (its clip length, room, caption, transition)."""
    from zencourt_pipeline.media.listing import ListingClip

    focus = (job.focus_x if job.focus_x is not None else 0.5, job.focus_y if job.focus_y is not None else 0.5)
    return ListingClip(
        job.id, job.seconds, job.room_name, job.caption, job.transition,
        focus if (job.focus_x, job.focus_y) != (None, None) else None,
    )  # fmt: skip


def validate_job(job: Job, instructions: str | None = None) -> None:
    """Refuse a photo job `domain.job_problem` finds a problem with (its id, prompt or duration), or
    whose prompt with the batch's `instructions` is too long (a given clip: `given_clips.validate_given_clip`)."""
    problem = job_problem(job.id, job.prompt, job.duration_seconds)
    if problem is None:
        problem = prompt_problem(job.prompt or default_prompt(job.room_name), instructions)
    if problem:
        raise BatchRejected(ErrorCode.INVALID_INPUT, problem)


def reject_batch(batches: BatchRepository, batch_id: str, jobs: list[Job], error: BatchRejected) -> None:
    """Fail every job and the batch itself with the rejection's code and message."""
    for job in jobs:
        batches.fail_job(job.id, error.code, error.message)
    batches.finish_batch(batch_id, BatchStatus.FAILED, error=f"{error.code}: {error.message}", error_code=error.code)


@dataclass(frozen=True)
class PhotoResult:
    job_id: str
    room_name: str | None
    status: PhotoOutcome
    photo_key: str | None = None
    width: int | None = None
    height: int | None = None
    exif_rotated: bool | None = None
    size_bytes: int | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    photo_path: Path | None = field(default=None, metadata=NOT_A_COLUMN)  # prepared in the work dir
    inspection: PhotoInspection | None = field(default=None, metadata=NOT_A_COLUMN)  # photos_usable


def fetch_source(url: str, dest: Path, storage: Storage, policy: FetchPolicy) -> Path:
    """A photo lives in our storage (its URI) or behind an https URL; nothing else is fetched."""
    key = storage.key_from_uri(url)
    if key is not None:
        return storage.get_file(key, dest)
    fetch_url(url, dest, policy, expect="image")  # what the bytes are, not what the server says
    return dest


def ingest_photos(
    batches: BatchRepository, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path, policy: FetchPolicy
) -> list[PhotoResult]:
    """Fetch, check, orient and store each open job's photo; a job whose photo is unusable fails."""
    from zencourt_pipeline.media.photos import prepare_photo

    results = []
    for job in jobs:
        if job.terminal:
            results.append(PhotoResult(job.id, job.room_name, PhotoOutcome.SKIPPED, error_code=job.error_code))
            continue
        if job.photo_key and storage.exists(job.photo_key):
            results.append(PhotoResult(job.id, job.room_name, PhotoOutcome.READY, photo_key=job.photo_key))
            continue
        try:
            validate_job(job, batch.instructions)
            source = fetch_source(job.image_url, work_dir / f"{job.id}.source", storage, policy)
            prepared = work_dir / f"{job.id}.jpg"
            info = prepare_photo(source, prepared)
            key = photo_key(batch.id, job.id)
            storage.put_file(key, prepared, "image/jpeg")
            batches.update_job(job.id, photo_key=key)
            results.append(
                PhotoResult(
                    job.id,
                    job.room_name,
                    PhotoOutcome.READY,
                    photo_key=key,
                    width=info.width,
                    height=info.height,
                    exif_rotated=info.exif_rotated,
                    size_bytes=info.size_bytes,
                    photo_path=prepared,
                )
            )
        except (BatchRejected, FetchError, MediaError, StorageError) as exc:
            if isinstance(exc, StorageError) and storage_is_failing(storage, exc, job.image_url):
                raise  # the storage's fault, not the photo's: the step is retried, the job stays open
            batches.fail_job(job.id, exc.code, exc.message)
            results.append(
                PhotoResult(job.id, job.room_name, PhotoOutcome.FAILED, error_code=exc.code, error_message=exc.message)
            )
    return results


def inspect_photos(storage: Storage, results: list[PhotoResult], work_dir: Path) -> list[PhotoResult]:
    """The ready photos with their `photos_usable` inspection: of the file just prepared, else of the stored copy."""
    inspected = []
    for result in results:
        if result.status != PhotoOutcome.READY or not result.photo_key:
            continue
        try:
            local = result.photo_path or storage.get_file(result.photo_key, work_dir / f"{result.job_id}.check.jpg")
            inspection = inspect_photo(local)
        except StorageError as exc:
            problem = PhotoProblem(PhotoProblemKind.UNDECODABLE, f"not decodable: {exc.code}: {exc.message}")
            inspection = PhotoInspection(problems=[problem])
        inspected.append(replace(result, inspection=inspection))
    return inspected


@dataclass(frozen=True)
class IntakeReport:
    """What `take_in_batch` did to the batch: how it ended, its photos and given clips, and the quota it fits in."""

    status: IntakeStatus
    photos: list[PhotoResult] = field(default_factory=list)  # one per photo job (none when rejected)
    inspected: list[PhotoResult] = field(default_factory=list)  # the ready photos with their inspection
    quota_usage: list[QuotaUsage] = field(default_factory=list)  # the early check's usage, when it was made
    error_code: ErrorCode | None = None  # why the batch failed (REJECTED, NO_USABLE_PHOTO)
    error_message: str | None = None
    clips: list[GivenClipResult] = field(default_factory=list)  # one per given-clip job (`clip_url`)

    def count(self, outcome: PhotoOutcome) -> int:
        """How many photos ended `outcome`."""
        return sum(1 for photo in self.photos if photo.status == outcome)

    def count_clips(self, outcome: ClipOutcome) -> int:
        """How many given clips ended `outcome`."""
        return sum(1 for clip in self.clips if clip.status == outcome)


def take_in_batch(
    db: AppDatabase, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path, policy: FetchPolicy,
    *, quota: QuotaLimits, time_to_narration: bool = False,
) -> IntakeReport:
    """Intake's state changes in order: validate the batch, apply the early quota rule to its
    photo jobs (the given clips are not generated, nothing is paid for them) and take its narration
    in (`pipeline.narration`) (reject it: every job and the batch fail), start it (with
    `time_to_narration`, the local generator's case, its photo clips timed to the narration), take
    its photos and given clips in, fail it NO_USABLE_PHOTO when none is ready, and inspect the ready
    photos."""
    usage: list[QuotaUsage] = []
    photo_jobs = [job for job in jobs if job.source == JobSource.PHOTO]
    clip_jobs = [job for job in jobs if job.source == JobSource.CLIP]
    try:
        template = batch_template(db.templates, batch)
        validate_batch(batch, jobs, template, policy)
        if not batch.terminal and not db.ledger.tasks_for_batch(batch.id):
            # only before the batch's first provider call: a re-run never rejects a batch it already paid for
            open_jobs = sum(1 for job in photo_jobs if not job.terminal)
            usage = enforce_quota(
                db.quota, batch, open_jobs, listing_quota=quota.listing_quota, workspace_quota=quota.workspace_quota
            )
        clips = [listing_clip(job) for job in jobs if not job.terminal]
        ingest_narration(db.batches, storage, batch, work_dir, policy, template=template, clips=clips)
    except BatchRejected as exc:
        reject_batch(db.batches, batch.id, jobs, exc)
        return IntakeReport(IntakeStatus.REJECTED, error_code=exc.code, error_message=exc.message)
    if batch.status == BatchStatus.PENDING:
        db.batches.start_batch(batch.id)
    if time_to_narration:  # the local generator's clips follow the voice (`pipeline.narration`)
        time_clips_to_narration(db.batches, storage, batch, jobs, work_dir, template=template)
    photos = ingest_photos(db.batches, storage, batch, photo_jobs, work_dir, policy)
    clips = ingest_given_clips(db.batches, storage, batch, clip_jobs, work_dir, policy)
    if not any(photo.status == PhotoOutcome.READY for photo in photos) and not any(
        clip.status == ClipOutcome.READY for clip in clips
    ):
        code = ErrorCode.NO_USABLE_PHOTO
        db.batches.finish_batch(batch.id, BatchStatus.FAILED, error=NO_USABLE_PHOTO_MESSAGE, error_code=code)
        return IntakeReport(
            IntakeStatus.NO_USABLE_PHOTO, photos, quota_usage=usage, error_code=code,
            error_message=NO_USABLE_PHOTO_MESSAGE, clips=clips,
        )  # fmt: skip
    inspected = inspect_photos(storage, photos, work_dir)
    return IntakeReport(IntakeStatus.TAKEN_IN, photos, inspected, usage, clips=clips)
