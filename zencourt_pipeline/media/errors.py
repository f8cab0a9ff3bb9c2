"""The one error type media functions raise; `code` goes to video_gen_jobs.error_code."""


class MediaError(Exception):
    # INVALID_INPUT, UNSUPPORTED_FORMAT, MEDIA_TRUNCATED, NORMALIZE_FAILED, COMPOSITION_FAILED, FFMPEG_FAILED
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
