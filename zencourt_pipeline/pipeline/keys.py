"""Storage keys of everything the pipeline writes, in one place."""

from zencourt_pipeline.domain import OutputSpec


def photo_key(batch_id: str, job_id: str) -> str:
    """Storage key of a job's prepared photo."""
    return f"batches/{batch_id}/photos/{job_id}.jpg"


def raw_clip_key(batch_id: str, job_id: str) -> str:
    """Storage key of a provider's clip as downloaded, before normalizing."""
    return f"batches/{batch_id}/generated/{job_id}.mp4"


def given_clip_key(batch_id: str, job_id: str, container: str) -> str:
    """Storage key of a clip the web app gave (`clip_url`), as fetched, before normalizing
    (`container`: `mp4` or `webm`, the file's own)."""
    return f"batches/{batch_id}/given/{job_id}.{container}"


def narration_key(batch_id: str, kind: str) -> str:
    """Storage key of a batch's narration as fetched and checked (`kind`: `mp3`, `m4a`, `aac`, `wav`)."""
    return f"batches/{batch_id}/narration.{kind}"


def clip_key(batch_id: str, job_id: str) -> str:
    """Storage key of a job's normalized clip."""
    return f"batches/{batch_id}/clips/{job_id}.mp4"


def clip_thumbnail_key(batch_id: str, job_id: str) -> str:
    """Storage key of a normalized clip's thumbnail."""
    return f"batches/{batch_id}/clips/{job_id}.jpg"


def _output_stem(batch_id: str, output: OutputSpec, template: str) -> str:
    return f"batches/{batch_id}/video/listing-{output.name}-{template}"


def video_key(batch_id: str, output: OutputSpec, template: str) -> str:
    """Storage key of one composed output (`listing-landscape-1920x1080-branded-default.mp4`)."""
    return f"{_output_stem(batch_id, output, template)}.mp4"


def video_thumbnail_key(batch_id: str, output: OutputSpec, template: str) -> str:
    """Storage key of a composed output's thumbnail."""
    return f"{_output_stem(batch_id, output, template)}.jpg"


def video_timeline_key(batch_id: str, output: OutputSpec, template: str) -> str:
    """Storage key of a composed output's timeline JSON (what re-renders it exactly)."""
    return f"{_output_stem(batch_id, output, template)}.timeline.json"


def video_subtitles_key(batch_id: str, output: OutputSpec, template: str, kind: str) -> str:
    """Storage key of a composed output's subtitle sidecar (`kind`: "srt" or "vtt")."""
    return f"{_output_stem(batch_id, output, template)}.{kind}"
