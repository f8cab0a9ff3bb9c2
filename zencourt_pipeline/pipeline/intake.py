"""Stage 1: check the batch, fetch every listing photo and prepare it (one bad photo fails one job)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, BatchStatus, Job
from zencourt_pipeline.domain import batch_problem, job_problem
from zencourt_pipeline.errors import CodedError, ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.net.fetch import FetchError, FetchPolicy, fetch_url
from zencourt_pipeline.pipeline.clip_checks import PhotoInspection, inspect_photo
from zencourt_pipeline.pipeline.keys import photo_key
from zencourt_pipeline.pipeline.results import NOT_A_COLUMN
from zencourt_pipeline.storage.base import Storage, StorageError


class BatchRejected(CodedError):
    """A batch refused before any download or provider call: its jobs and the batch fail with `code`."""


def validate_batch(batch: Batch, jobs: list[Job]) -> None:
    """Refuse a batch that cannot produce a video, before any download or provider call (the
    rules of `domain`, the ones the HTTP models apply to a request body)."""
    from zencourt_pipeline.media.templates import load_template

    problem = batch_problem(batch.id, len(jobs), batch.orientation)
    if problem:
        raise BatchRejected(ErrorCode.INVALID_INPUT, problem)
    try:
        load_template(batch.template)
    except MediaError as exc:
        raise BatchRejected(exc.code, exc.message) from exc


def validate_job(job: Job) -> None:
    """Refuse a job `domain.job_problem` finds a problem with (its id, prompt or duration)."""
    problem = job_problem(job.id, job.prompt, job.duration_seconds)
    if problem:
        raise BatchRejected(ErrorCode.INVALID_INPUT, problem)


def reject_batch(db: AppDatabase, batch_id: str, jobs: list[Job], error: BatchRejected) -> None:
    """Fail every job and the batch itself with the rejection's code and message."""
    for job in jobs:
        db.fail_job(job.id, error.code, error.message)
    db.finish_batch(batch_id, BatchStatus.FAILED, error=f"{error.code}: {error.message}", error_code=error.code)


@dataclass(frozen=True)
class PhotoResult:
    job_id: str
    room_name: str | None
    status: str  # ready | failed | skipped
    photo_key: str | None = None
    width: int | None = None
    height: int | None = None
    exif_rotated: bool | None = None
    size_bytes: int | None = None
    error_code: str | None = None
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


def storage_is_failing(storage: Storage, exc: StorageError, source_url: str) -> bool:
    """Whether a storage error is the storage's (an upload, or a read of a source that is there)
    rather than the photo's (a missing object, a bad key)."""
    if exc.code == ErrorCode.STORAGE_UPLOAD_FAILED:
        return True
    key = storage.key_from_uri(source_url)
    return key is not None and exc.code == ErrorCode.STORAGE_DOWNLOAD_FAILED and storage.exists(key)


def ingest_photos(
    db: AppDatabase, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path, policy: FetchPolicy
) -> list[PhotoResult]:
    """Fetch, check, orient and store each open job's photo; a job whose photo is unusable fails."""
    from zencourt_pipeline.media.photos import prepare_photo

    results = []
    for job in jobs:
        if job.terminal:
            results.append(PhotoResult(job.id, job.room_name, "skipped", error_code=job.error_code))
            continue
        if job.photo_key and storage.exists(job.photo_key):
            results.append(PhotoResult(job.id, job.room_name, "ready", photo_key=job.photo_key))
            continue
        try:
            validate_job(job)
            source = fetch_source(job.image_url, work_dir / f"{job.id}.source", storage, policy)
            prepared = work_dir / f"{job.id}.jpg"
            info = prepare_photo(source, prepared)
            key = photo_key(batch.id, job.id)
            storage.put_file(key, prepared, "image/jpeg")
            db.update_job(job.id, photo_key=key)
            results.append(
                PhotoResult(
                    job.id,
                    job.room_name,
                    "ready",
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
            db.fail_job(job.id, exc.code, exc.message)
            results.append(
                PhotoResult(job.id, job.room_name, "failed", error_code=exc.code, error_message=exc.message)
            )
    return results


def inspect_photos(storage: Storage, results: list[PhotoResult], work_dir: Path) -> list[PhotoResult]:
    """The ready photos with their `photos_usable` inspection: of the file just prepared, else of the stored copy."""
    inspected = []
    for result in results:
        if result.status != "ready" or not result.photo_key:
            continue
        try:
            local = result.photo_path or storage.get_file(result.photo_key, work_dir / f"{result.job_id}.check.jpg")
            inspection = inspect_photo(local)
        except StorageError as exc:
            inspection = PhotoInspection(problems=[f"not decodable: {exc.code}: {exc.message}"])
        inspected.append(replace(result, inspection=inspection))
    return inspected
