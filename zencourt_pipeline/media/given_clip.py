"""Is a clip the web app gave us usable as a room clip? Judged from the file itself (pure, Dagster-free).

A given clip (`video_gen_jobs.clip_url`) skips generation; before it is stored as the job's raw
clip it must be a video container (MP4/QuickTime by their `ftyp` box, WebM/Matroska by their EBML
magic), read to its end without damage (one `ffmpeg -c copy` pass, no decode), carry a real video
stream (cover art does not count), last at most `max_source_s`, and hold its in/out points.
`check_given_clip` returns what it found or raises `MediaError` with the code that says why not:
`CLIP_NOT_VIDEO`, `CLIP_AUDIO_ONLY`, `CLIP_TRUNCATED`, `CLIP_TOO_LONG`, `CLIP_OUT_OF_RANGE`.
Normalize then trims it to [in, out] like any raw clip (`normalize.normalize_clip(start_s=...)`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import read_through

# the end of a clip may be short of its out point by this much (container rounding)
END_TOLERANCE_S = 0.05

_EBML = b"\x1a\x45\xdf\xa3"
_AUDIO_MAGIC = (b"ID3", b"OggS", b"fLaC", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xf1", b"\xff\xf9")
_DAMAGE = ("moov atom not found", "partial file", "Invalid data found", "corrupt", "End of file", "Truncat")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio): (.*)$", re.MULTILINE)
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_SIZE = re.compile(r", (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r", (\d+(?:\.\d+)?) fps")


@dataclass(frozen=True, slots=True)
class GivenClip:
    """What a usable given clip is: its length, frame, frame rate, whether it has sound (dropped by
    normalize), its container and size."""

    duration_s: float
    width: int
    height: int
    fps: float
    has_audio: bool
    container: str  # mp4 | webm
    size_bytes: int


def container_of(head: bytes) -> str | None:
    """`mp4` (an ISO BMFF / QuickTime file), `webm` (Matroska) or `audio` from the first bytes; None otherwise."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(_EBML):
        return "webm"
    if head.startswith(_AUDIO_MAGIC) or (head.startswith(b"RIFF") and head[8:12] == b"WAVE"):
        return "audio"
    return None


def check_given_clip(path: Path, *, in_s: float, out_s: float | None, max_source_s: float) -> GivenClip:
    """The clip at `path` if it can be stitched from `in_s` to `out_s` (seconds; None: to wherever the
    caller decides, only `in_s` is checked); MediaError otherwise."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if size == 0:
        raise MediaError(ErrorCode.CLIP_TRUNCATED, "the clip is empty (0 bytes)")
    with path.open("rb") as handle:
        container = container_of(handle.read(64))
    if container == "audio":
        raise MediaError(ErrorCode.CLIP_AUDIO_ONLY, "the clip is an audio file: it has no video stream")
    if container is None:
        raise MediaError(ErrorCode.CLIP_NOT_VIDEO, "the clip is not a video (an MP4, QuickTime or WebM file)")
    returncode, report = read_through(path, streams="0", slow_code=ErrorCode.CLIP_TOO_LONG, what="clip")
    streams = _STREAM.findall(report)
    damaged = returncode != 0 or any(marker in report for marker in _DAMAGE)
    if damaged and not streams:
        raise MediaError(ErrorCode.CLIP_TRUNCATED, "the clip cannot be opened: it is cut short or damaged")
    video = [detail for kind, detail in streams if kind == "Video" and "attached pic" not in detail]
    if not video:
        if any(kind == "Audio" for kind, _detail in streams):
            raise MediaError(ErrorCode.CLIP_AUDIO_ONLY, "the clip has no video stream (audio only)")
        raise MediaError(ErrorCode.CLIP_NOT_VIDEO, "the clip has no video stream")
    if damaged:
        raise MediaError(ErrorCode.CLIP_TRUNCATED, "the clip is cut short or damaged: it does not read to its end")
    duration = _DURATION.search(report)
    seconds = int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3]) if duration else 0.0
    if seconds <= 0:
        raise MediaError(ErrorCode.CLIP_TRUNCATED, "the clip has no duration")
    if seconds > max_source_s:
        raise MediaError(ErrorCode.CLIP_TOO_LONG, f"the clip lasts {seconds:.1f} s (at most {max_source_s:g} s)")
    if in_s >= seconds or (out_s is not None and out_s > seconds + END_TOLERANCE_S):
        points = f"in/out points {in_s:g}..{out_s:g} s are" if out_s is not None else f"in point {in_s:g} s is"
        raise MediaError(ErrorCode.CLIP_OUT_OF_RANGE, f"{points} past the clip's end ({seconds:.2f} s)")
    frame, fps = _SIZE.search(video[0]), _FPS.search(video[0])
    return GivenClip(
        duration_s=round(seconds, 3),
        width=int(frame[1]) if frame else 0,
        height=int(frame[2]) if frame else 0,
        fps=float(fps[1]) if fps else 0.0,
        has_audio=any(kind == "Audio" for kind, _detail in streams),
        container=container,
        size_bytes=size,
    )
