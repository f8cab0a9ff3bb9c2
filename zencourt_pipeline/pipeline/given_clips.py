"""Stage 1, for the jobs that start from a clip the web app already has (`video_gen_jobs.clip_url`,
issue 14 point 5): fetch it (our storage's URI, or an https URL through the SSRF-safe downloader),
check it (`media.given_clip`: a video container that reads to its end, a real video stream, at most
`GIVEN_CLIP_SOURCE_SECONDS_MAX`, its in/out points inside it) and store it as the job's raw clip.

From there it goes the generated clips' way: no provider task (nothing paid, no quota), the
completions sensor counts a stored raw clip as ready, normalize trims it to [in, out] and compose
uses it in its sort order. A bad clip fails only its own job, with the code that says why
(`CLIP_NOT_VIDEO`, `CLIP_AUDIO_ONLY`, `CLIP_TRUNCATED`, `CLIP_TOO_LONG`, `CLIP_OUT_OF_RANGE`;
a download's own refusal or failure keeps the downloader's code).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from zencourt_pipeline.db.batches import BatchRepository
from zencourt_pipeline.db.records import Batch, Job, JobStatus
from zencourt_pipeline.domain import (
    GIVEN_CLIP_SECONDS_MIN,
    GIVEN_CLIP_SOURCE_SECONDS_MAX,
    BatchRejected,
    given_clip_problem,
    job_problem,
)
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.given_clip import GivenClip, check_given_clip
from zencourt_pipeline.net.fetch import FetchError, FetchPolicy, fetch_url
from zencourt_pipeline.pipeline.keys import given_clip_key
from zencourt_pipeline.storage.base import Storage, StorageError, storage_is_failing

GIVEN_CLIP_MAX_BYTES = 500 * 1024 * 1024  # a 600 s phone clip at ~6 Mbit/s fits
CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm"}


class ClipOutcome(StrEnum):
    """What intake did with one given clip (the values of `intake.PhotoOutcome`)."""

    READY = "ready"  # checked and stored as the job's raw clip (now, or by an earlier run)
    FAILED = "failed"  # unusable: the job failed with the clip's error code
    SKIPPED = "skipped"  # the job had already ended


@dataclass(frozen=True)
class GivenClipResult:
    job_id: str
    room_name: str | None
    status: ClipOutcome
    raw_clip_key: str | None = None
    in_s: float | None = None
    out_s: float | None = None
    source_s: float | None = None
    width: int | None = None
    height: int | None = None
    has_audio: bool | None = None
    size_bytes: int | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None


def clip_points(job: Job) -> tuple[float, float]:
    """(in, out) of a given clip in seconds (out absent: in + its span)."""
    start = job.clip_in_seconds or 0.0
    return start, round(start + job.seconds, 3)


def resolved_out(job: Job, clip: GivenClip) -> float:
    """The out point of a given clip: its own; absent, in + duration_seconds or the clip's end when
    sooner (CLIP_OUT_OF_RANGE when that leaves less than GIVEN_CLIP_SECONDS_MIN)."""
    start, end = clip_points(job)
    if job.clip_out_seconds is not None:
        return end
    end = round(min(end, clip.duration_s), 3)
    if end - start < GIVEN_CLIP_SECONDS_MIN:
        raise MediaError(
            ErrorCode.CLIP_OUT_OF_RANGE,
            f"in point {start:g} s leaves {end - start:.2f} s of the clip (at least {GIVEN_CLIP_SECONDS_MIN:g} s)",
        )
    return end


def fetch_given_clip(url: str, dest: Path, storage: Storage, policy: FetchPolicy) -> Path:
    """The clip from our storage (its URI) or an https URL (SSRF-safe, up to GIVEN_CLIP_MAX_BYTES)."""
    key = storage.key_from_uri(url)
    if key is not None:
        return storage.get_file(key, dest)
    fetch_url(url, dest, replace(policy, max_bytes=max(policy.max_bytes, GIVEN_CLIP_MAX_BYTES)))
    return dest  # what the bytes are is judged by `check_given_clip`, not by the server's headers


def validate_given_clip(job: Job) -> None:
    """Refuse a given clip whose id or in/out points are unusable (`domain`'s rules)."""
    problem = job_problem(job.id, None, job.duration_seconds) or given_clip_problem(
        job.clip_in_seconds, job.clip_out_seconds, job.duration_seconds
    )
    if problem:
        raise BatchRejected(ErrorCode.INVALID_INPUT, problem)


def ingest_given_clips(
    batches: BatchRepository, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path, policy: FetchPolicy
) -> list[GivenClipResult]:
    """Fetch, check and store each open given clip as its job's raw clip; a bad clip fails its job."""
    results = []
    for job in jobs:
        if job.terminal:
            results.append(GivenClipResult(job.id, job.room_name, ClipOutcome.SKIPPED, error_code=job.error_code))
            continue
        start, end = clip_points(job)
        if job.raw_clip_key and storage.exists(job.raw_clip_key):
            results.append(GivenClipResult(job.id, job.room_name, ClipOutcome.READY, job.raw_clip_key, start, end))
            continue
        try:
            validate_given_clip(job)
            source = fetch_given_clip(job.clip_url, work_dir / f"{job.id}.given", storage, policy)
            out = end if job.clip_out_seconds is not None else None
            clip = check_given_clip(source, in_s=start, out_s=out, max_source_s=GIVEN_CLIP_SOURCE_SECONDS_MAX)
            end = resolved_out(job, clip)
            key = given_clip_key(batch.id, job.id, clip.container)
            storage.put_file(key, source, CONTENT_TYPES[clip.container])
            # the out point resolved (an absent one: in + duration_seconds, or the clip's end when sooner)
            batches.update_job(job.id, raw_clip_key=key, clip_out_seconds=end, status=JobStatus.PROCESSING)
        except (BatchRejected, FetchError, MediaError, StorageError) as exc:
            if isinstance(exc, StorageError) and storage_is_failing(storage, exc, job.clip_url):
                raise  # the storage's fault, not the clip's: the step is retried, the job stays open
            batches.fail_job(job.id, exc.code, exc.message)
            results.append(
                GivenClipResult(job.id, job.room_name, ClipOutcome.FAILED, error_code=exc.code, error_message=exc.message)
            )
            continue
        results.append(
            GivenClipResult(
                job.id, job.room_name, ClipOutcome.READY, key, start, end, clip.duration_s, clip.width, clip.height,
                clip.has_audio, clip.size_bytes,
            )
        )  # fmt: skip
    return results
