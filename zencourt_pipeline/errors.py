"""Every error code that reaches a job or batch row, and the one exception base that carries one.

`ErrorCode` is the single list: `video_gen_jobs.error_code`, `video_gen_batch.error_code`, the
`batch.failed` webhook, dead webhook rows (`WEBHOOK_DELIVERY_FAILED`) and the status API carry these values (plain strings in the database: a
`StrEnum` member *is* its string). docs/errors.md's error-code list and docs/contract.md are tested
against this enum (zencourt_pipeline_tests/test_error_codes.py).

`CodedError(code, message)` is the base of every exception that maps to a row's error code
(media, storage, downloads, generation, intake rejection, regeneration refusal): subclasses add
what is particular to them (`retryable`, `fallback`, ...) and never re-declare `code`/`message`.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    # -- input and media (a job's photo, a clip, a composition) ------------------------------
    INVALID_INPUT = "INVALID_INPUT"  # a bad URL, photo, field or file: the caller's to fix
    MISSING_REQUIRED_FIELD = "MISSING_REQUIRED_FIELD"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    MEDIA_TRUNCATED = "MEDIA_TRUNCATED"
    FFMPEG_FAILED = "FFMPEG_FAILED"
    NORMALIZE_FAILED = "NORMALIZE_FAILED"
    COMPOSITION_FAILED = "COMPOSITION_FAILED"  # also batch-level: the compose run failed for good
    # -- a given clip (the web app's own clip, stitched without generation) ----------------------
    CLIP_NOT_VIDEO = "CLIP_NOT_VIDEO"  # not an MP4, QuickTime or WebM video (an image, a page, ...)
    CLIP_AUDIO_ONLY = "CLIP_AUDIO_ONLY"  # a media file without a video stream
    CLIP_TRUNCATED = "CLIP_TRUNCATED"  # empty, cut short or damaged
    CLIP_TOO_LONG = "CLIP_TOO_LONG"  # the source is longer than the bound
    CLIP_OUT_OF_RANGE = "CLIP_OUT_OF_RANGE"  # its in/out points are past the clip's end
    # -- a batch's narration (`narration_url`, issue 14 point 4): the batch fails --------------
    NARRATION_INVALID = "NARRATION_INVALID"  # not an mp3/wav/m4a/aac audio file, or damaged
    NARRATION_TOO_LARGE = "NARRATION_TOO_LARGE"  # the file is over the size bound
    NARRATION_TOO_LONG = "NARRATION_TOO_LONG"  # longer than the bound, or than the clips can hold
    # -- storage and downloads ---------------------------------------------------------------
    STORAGE_DOWNLOAD_FAILED = "STORAGE_DOWNLOAD_FAILED"
    STORAGE_UPLOAD_FAILED = "STORAGE_UPLOAD_FAILED"
    STORAGE_DELETE_FAILED = "STORAGE_DELETE_FAILED"
    # -- a paid task's output ------------------------------------------------------------------
    INVALID_OUTPUT = "INVALID_OUTPUT"  # the provider's output is not a valid MP4 (twice)
    OUTPUT_URL_EXPIRED = "OUTPUT_URL_EXPIRED"
    OUTPUT_NOT_READY = "OUTPUT_NOT_READY"
    OUTPUT_DOWNLOAD_FAILED = "OUTPUT_DOWNLOAD_FAILED"  # never regenerated: the task is paid
    PROVIDER_ANSWER_LOST = "PROVIDER_ANSWER_LOST"  # a create reached the provider, its answer did not
    LOCAL_OUTPUT_MISSING = "LOCAL_OUTPUT_MISSING"
    # -- Runway ----------------------------------------------------------------------------------
    RUNWAY_GENERATION_FAILED = "RUNWAY_GENERATION_FAILED"
    RUNWAY_SAFETY_REJECTED = "RUNWAY_SAFETY_REJECTED"
    RUNWAY_TASK_NOT_FOUND = "RUNWAY_TASK_NOT_FOUND"
    RUNWAY_TASK_CANCELED = "RUNWAY_TASK_CANCELED"
    RUNWAY_RATE_LIMITED = "RUNWAY_RATE_LIMITED"
    RUNWAY_UNAVAILABLE = "RUNWAY_UNAVAILABLE"
    RUNWAY_AUTH_FAILED = "RUNWAY_AUTH_FAILED"
    RUNWAY_INSUFFICIENT_CREDITS = "RUNWAY_INSUFFICIENT_CREDITS"
    RUNWAY_REQUEST_FAILED = "RUNWAY_REQUEST_FAILED"
    RUNWAY_CANCEL_FAILED = "RUNWAY_CANCEL_FAILED"
    # -- fal (Kling) -----------------------------------------------------------------------------
    FAL_GENERATION_FAILED = "FAL_GENERATION_FAILED"
    FAL_CONTENT_POLICY = "FAL_CONTENT_POLICY"
    FAL_REQUEST_NOT_FOUND = "FAL_REQUEST_NOT_FOUND"
    FAL_RATE_LIMITED = "FAL_RATE_LIMITED"
    FAL_UNAVAILABLE = "FAL_UNAVAILABLE"
    FAL_AUTH_FAILED = "FAL_AUTH_FAILED"
    FAL_REQUEST_FAILED = "FAL_REQUEST_FAILED"
    FAL_CANCEL_FAILED = "FAL_CANCEL_FAILED"
    # -- the local generator ---------------------------------------------------------------------
    LOCAL_GENERATION_FAILED = "LOCAL_GENERATION_FAILED"
    # -- any provider ----------------------------------------------------------------------------
    GENERATION_FAILED = "GENERATION_FAILED"  # no generation provider was left to try
    # -- a job's or a batch's fate ---------------------------------------------------------------
    CANCELED = "CANCELED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    GENERATION_TIMEOUT = "GENERATION_TIMEOUT"  # batch-level, and on the jobs it timed out
    COMPOSITION_TIMEOUT = "COMPOSITION_TIMEOUT"
    CLIP_CHECK_FAILED = "CLIP_CHECK_FAILED"
    INTAKE_FAILED = "INTAKE_FAILED"
    ALL_CLIPS_FAILED = "ALL_CLIPS_FAILED"
    NO_USABLE_PHOTO = "NO_USABLE_PHOTO"
    # -- the web app's completion webhooks ----------------------------------------------------------
    WEBHOOK_DELIVERY_FAILED = "WEBHOOK_DELIVERY_FAILED"  # an outbox row is dead (retries exhausted)
    # -- an operator's regeneration refused (a Dagster failure's code, never on a row) ------------
    IN_FLIGHT = "IN_FLIGHT"  # the job has a provider task still in flight

    @classmethod
    def generation_failed(cls, provider: str) -> ErrorCode:
        """`<PROVIDER>_GENERATION_FAILED` for a provider name (`runway`, `fal`, `local`)."""
        return cls(f"{provider.upper()}_GENERATION_FAILED")


class CodedError(Exception):
    """An error with a stable `code` (an `ErrorCode`) and a human `message`.

    `str(error)` is `"CODE: message"`, what logs and Dagster's failure text show.
    """

    def __init__(self, code: ErrorCode | str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = ErrorCode(code)
        self.message = message
