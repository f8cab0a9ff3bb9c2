"""One JPEG frame from a video (fast input seek, JPEG quality 3, written atomically)."""

from __future__ import annotations

import os
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import probe, run_ffmpeg
from zencourt_pipeline.media.normalize import temp_path_for


def extract_thumbnail(video: Path, dest: Path, *, at_s: float = 1.0, width: int | None = None) -> Path:
    """Write the frame at `at_s` of `video` to `dest` as a JPEG (the middle frame if at_s is past the end)."""
    video, dest = Path(video), Path(dest)
    if not video.is_file():
        raise MediaError(ErrorCode.INVALID_INPUT, f"no such video: {video}")
    if width is not None and width <= 0:
        raise MediaError(ErrorCode.INVALID_INPUT, f"thumbnail width must be positive, got {width}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest, ".jpg")
    try:
        _grab(video, tmp, at_s, width)
        if not _written(tmp):
            # Seeking past the end yields no frame: take the middle of the video instead.
            _grab(video, tmp, probe(video).duration / 2, width)
        if not _written(tmp):
            raise MediaError(ErrorCode.FFMPEG_FAILED, f"no frame could be extracted from {video.name}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _grab(video: Path, out: Path, at_s: float, width: int | None) -> None:
    try:
        run_ffmpeg(graphs.thumbnail_args(video, out, at_s=at_s, width=width), timeout=120)
    except MediaError:
        out.unlink(missing_ok=True)


def _written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0
