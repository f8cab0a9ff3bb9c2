"""The one error type media functions raise; `code` goes to video_gen_jobs.error_code."""

from zencourt_pipeline.errors import CodedError


class MediaError(CodedError):
    """A media step failed: INVALID_INPUT, UNSUPPORTED_FORMAT, MEDIA_TRUNCATED, NORMALIZE_FAILED,
    COMPOSITION_FAILED or FFMPEG_FAILED (an `ErrorCode`)."""
