"""A batch's narration (issue 14 point 4): taken in at intake, read back at composition.

Intake (`ingest_narration`, before the batch starts and before anything is paid): the file comes
from our storage (its URI) or an https URL through the one SSRF-safe downloader (`net.fetch`, at
most `NARRATION_MAX_BYTES`), its first bytes must be an MP3, WAV, M4A or AAC file (`net.sniff`),
the file itself a sound voice-over within the bounds (`media.narration.check_narration`), and the
clips the batch asks for must be able to hold it (the last clip held at most
`NARRATION_MAX_HOLD_S`). Then it is stored under `batches/<id>/narration.<kind>` and its key
recorded. Any refusal fails the whole batch (`BatchRejected`, as a bad template or callback URL
does) with the code that says why: `NARRATION_INVALID`, `NARRATION_TOO_LARGE`,
`NARRATION_TOO_LONG`, or the downloader's own (`INVALID_INPUT` for a URL the fetch policy refuses:
a private address, plain http, credentials).

Composition (`load_narration`): the stored copy, analyzed (loudness, speech spans) into what the
timeline reads; whether the unbranded cut hears it follows `narrationIdentifiesAgent`.

Stills + narration (`time_clips_to_narration`, when the local generator is the only provider: its
Ken Burns clips can last any length, a paid provider's cannot): intake gives each photo job the
length `timeline.narration.clip_durations` picks (the video lasts the voice, each crossfade in a
pause) as `timed_seconds`, and `duration_seconds` that length rounded up (what the generator
renders; normalize trims to `Job.seconds`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from zencourt_pipeline.db.batches import BatchRepository
from zencourt_pipeline.db.records import Batch, Job
from zencourt_pipeline.domain import BatchRejected, JobSource, parse_facts
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.narration import NARRATION_MAX_BYTES, analyze_narration, check_narration
from zencourt_pipeline.media.timeline.narration import Narration, clip_durations
from zencourt_pipeline.net.download import TooLarge
from zencourt_pipeline.net.fetch import FetchError, FetchPolicy, fetch_url
from zencourt_pipeline.net.sniff import describe, sniff_audio, sniff_image_type
from zencourt_pipeline.pipeline.generation import batch_clip_frame
from zencourt_pipeline.pipeline.keys import narration_key
from zencourt_pipeline.storage.base import Storage, StorageError, storage_is_failing

if TYPE_CHECKING:
    from zencourt_pipeline.media.listing import ListingClip
    from zencourt_pipeline.media.templates import Template

log = logging.getLogger(__name__)

CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "m4a": "audio/mp4", "aac": "audio/aac"}


def fetch_narration(url: str, dest: Path, storage: Storage, policy: FetchPolicy) -> Path:
    """The narration from our storage (its URI) or an https URL (SSRF-safe, up to NARRATION_MAX_BYTES)."""
    key = storage.key_from_uri(url)
    if key is not None:
        return storage.get_file(key, dest)
    try:
        fetch_url(url, dest, replace(policy, max_bytes=NARRATION_MAX_BYTES))
    except TooLarge as exc:
        raise BatchRejected(ErrorCode.NARRATION_TOO_LARGE, f"narration_url: {exc.message}") from None
    return dest


def ingest_narration(
    batches: BatchRepository, storage: Storage, batch: Batch, work_dir: Path, policy: FetchPolicy, *,
    template: Template, clips: Sequence[ListingClip],
) -> str | None:
    """Fetch, check and store the batch's narration; its storage key (None: the batch has none).
    `clips`: the batch's open jobs as `media.listing` composes them (they must hold the narration).
    BatchRejected with the code that says why it cannot be used; a failing storage's StorageError
    propagates (the step is retried)."""
    if batch.narration_url is None:
        return None
    if batch.narration_key and storage.exists(batch.narration_key):
        return batch.narration_key
    try:
        source = fetch_narration(batch.narration_url, work_dir / "narration.source", storage, policy)
        kind = sniff_audio(source)
        if kind is None:
            seen = describe(sniff_image_type(source))
            raise BatchRejected(ErrorCode.NARRATION_INVALID, f"narration_url: the file is {seen}, not an MP3, WAV, M4A or AAC file")
        found = check_narration(source)
        _check_fits(batch, clips, template, found.duration_s)
        key = narration_key(batch.id, kind)
        storage.put_file(key, source, CONTENT_TYPES[kind])
    except (FetchError, MediaError) as exc:
        raise BatchRejected(exc.code, f"narration_url: {exc.message}") from None
    except StorageError as exc:
        if storage_is_failing(storage, exc, batch.narration_url):
            raise
        raise BatchRejected(exc.code, f"narration_url: {exc.message}") from None
    batches.set_narration_key(batch.id, key)
    return key


def _check_fits(batch: Batch, clips: Sequence[ListingClip], template: Template, duration_s: float) -> None:
    """MediaError(NARRATION_TOO_LONG) when the batch's clips, as asked, cannot hold the narration
    (the branded timeline at the batch's clip frame: the longest, the unbranded cut may drop it)."""
    from zencourt_pipeline.media.listing import clip_input
    from zencourt_pipeline.media.timeline.build import build_timeline

    if not clips:
        return
    width, height = batch_clip_frame(batch)
    build_timeline(
        [clip_input(clip, Path(clip.name)) for clip in clips], width=width, height=height, title=batch.title,
        template=template, facts=parse_facts(batch.facts), narration=Narration("narration", duration_s),
    )  # fmt: skip


def load_narration(storage: Storage, batch: Batch, work_dir: Path) -> Narration | None:
    """The batch's stored narration, analyzed for the timeline (None: the batch has none)."""
    if not batch.narration_key:
        return None
    kind = batch.narration_key.rsplit(".", 1)[-1]
    path = storage.get_file(batch.narration_key, work_dir / f"narration.{kind}")
    return analyze_narration(path, identifies_agent=batch.narration_names_agent)


def time_clips_to_narration(
    batches: BatchRepository, storage: Storage, batch: Batch, jobs: list[Job], work_dir: Path, *, template: Template
) -> dict[str, float]:
    """Time the batch's open photo jobs to its stored narration (`timed_seconds`, and
    `duration_seconds` rounded up); {job id: seconds}, empty when there is nothing to time (no
    narration, a given clip among the jobs, timed already) or the narration cannot be analyzed."""
    current = batches.get_batch(batch.id) or batch
    open_jobs = [job for job in jobs if not job.terminal]
    if not current.narration_key or not open_jobs or any(job.timed_seconds for job in open_jobs):
        return {}
    if any(job.source == JobSource.CLIP for job in open_jobs):
        return {}  # a given clip has its own span: the photos alone cannot follow the voice
    try:
        voice = load_narration(storage, current, work_dir)
    except (MediaError, StorageError) as exc:
        log.warning("batch %s: clips not timed to the narration: %s", batch.id, exc)
        return {}
    if voice is None:
        return {}
    lengths = clip_durations(voice.speech, voice.duration_s, len(open_jobs), transition_s=template.transition_seconds)
    for job, seconds in zip(open_jobs, lengths, strict=True):
        batches.update_job(job.id, timed_seconds=seconds, duration_seconds=math.ceil(seconds - 1e-6))
    return {job.id: seconds for job, seconds in zip(open_jobs, lengths, strict=True)}
