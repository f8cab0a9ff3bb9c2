"""Normalize any listing clip to the one format the compositor and stream-copy concat expect.

Output: exactly width x height (cover-scale + centre crop, SAR 1), constant fps, yuv420p, H.264 High
with closed GOPs of at most one second, no audio, `+faststart`, identical encoder settings for every clip.
One ffmpeg pass per clip; the file appears at `dest` atomically or not at all.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import VideoInfo, probe, run_ffmpeg
from zencourt_pipeline.media.mp4index import VideoTrackIndex, read_video_index

# Markers ffmpeg prints (on success too) when the input ends early or is damaged.
_TRUNCATION_MARKERS = ("partial file", "moov atom not found", "End of file while parsing")
_DURATION_TOLERANCE_S = 0.1


def temp_path_for(dest: Path, suffix: str | None = None) -> Path:
    """A hidden temp file in dest's directory, so os.replace onto dest is atomic."""
    suffix = suffix if suffix is not None else dest.suffix
    return dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:12]}.tmp{suffix}")


def _indexed(path: Path) -> VideoTrackIndex | None:
    """The MP4 sample index when `path` is an MP4 with a sane video track (no ffmpeg run), else None."""
    try:
        ix = read_video_index(path)
    except (MediaError, OSError, ValueError, IndexError):  # struct.error is a ValueError
        return None
    return ix if ix.width > 0 and ix.height > 0 and ix.sample_count > 0 and ix.frame_delta != 0 else None


def _probe_input(src: Path) -> float:
    """Check that `src` is a readable video; returns its duration (0 when unknown)."""
    src = Path(src)
    if not src.is_file():
        raise MediaError(ErrorCode.INVALID_INPUT, f"input clip not found: {src}")
    if src.stat().st_size == 0:
        raise MediaError(ErrorCode.INVALID_INPUT, f"input clip {src.name} is empty (0 bytes)")
    indexed = _indexed(src)  # MP4s (almost every provider clip): read the index, skip an ffmpeg run
    if indexed is not None:
        return indexed.duration_s
    try:
        info = probe(src)
    except MediaError as exc:
        raise MediaError(exc.code, f"cannot read input clip {src.name}: {exc.message}") from exc
    if info.width <= 0 or info.height <= 0:
        raise MediaError(ErrorCode.INVALID_INPUT, f"input clip {src.name} has no readable frame size")
    return info.duration


def _output_info(path: Path) -> VideoInfo:
    """What we just wrote, from its MP4 index (ffmpeg's probe only if the index is unreadable)."""
    ix = _indexed(path)
    if ix is None or not ix.avcc:
        return probe(path)
    return VideoInfo(
        codec="h264",
        width=ix.width,
        height=ix.height,
        fps=round(ix.fps, 3),
        duration=round(ix.duration_s, 6),
        pix_fmt=ix.pix_fmt,
        has_audio=ix.has_audio,
        audio_codec=None,
        rotation=90 if ix.rotated else 0,
        size_bytes=path.stat().st_size,
    )


def normalize_clip(
    src: Path,
    dest: Path,
    *,
    width: int,
    height: int,
    fps: int = 30,
    duration_s: float | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    keyframes: Sequence[int] = (),
    start_s: float = 0.0,
) -> VideoInfo:
    """Re-encode `src` to a normalized clip at `dest` and return the probed output.

    `start_s` skips the source's first seconds (a given clip's in point); `duration_s` trims the
    clip (or pads it by cloning its last frame when the source is shorter).
    `keyframes`: frames that must start a GOP besides the one-second grid (`compose.clip_keyframes`).
    Raises MediaError: INVALID_INPUT / MEDIA_TRUNCATED for unreadable input, NORMALIZE_FAILED otherwise.
    """
    src, dest = Path(src), Path(dest)
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise MediaError(ErrorCode.INVALID_INPUT, f"output size must be positive and even, got {width}x{height}")
    if duration_s is not None and duration_s <= 0:
        raise MediaError(ErrorCode.INVALID_INPUT, f"duration_s must be positive, got {duration_s}")
    if start_s < 0:
        raise MediaError(ErrorCode.INVALID_INPUT, f"start_s must not be negative, got {start_s}")
    source_duration = _probe_input(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest, ".mp4")
    args = graphs.normalize_args(
        src, tmp, width=width, height=height, fps=fps, duration_s=duration_s, crf=crf, preset=preset,
        keyframes=keyframes, start_s=start_s,
    )
    try:
        proc = run_ffmpeg(args, code=ErrorCode.NORMALIZE_FAILED)
        report = proc.stderr.decode(errors="replace")
        if any(marker in report for marker in _TRUNCATION_MARKERS):
            raise MediaError(ErrorCode.MEDIA_TRUNCATED, f"input clip {src.name} is truncated or damaged")
        info = _output_info(tmp)
        _check_output(info, src=src, width=width, height=height, fps=fps, duration_s=duration_s)
        os.replace(tmp, dest)
    except MediaError as exc:
        if exc.code == ErrorCode.NORMALIZE_FAILED and source_duration == 0:
            raise MediaError(ErrorCode.MEDIA_TRUNCATED, f"input clip {src.name} has no decodable frames") from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return replace(info, size_bytes=dest.stat().st_size)


def _check_output(
    info: VideoInfo, *, src: Path, width: int, height: int, fps: int, duration_s: float | None
) -> None:
    problems = []
    if info.codec != "h264":
        problems.append(f"codec {info.codec}")
    if (info.width, info.height) != (width, height):
        problems.append(f"size {info.width}x{info.height}")
    if abs(info.fps - fps) > 0.01:
        problems.append(f"{info.fps} fps")
    if info.pix_fmt != "yuv420p":
        problems.append(f"pixel format {info.pix_fmt}")
    if info.has_audio:
        problems.append("an audio stream")
    if duration_s is not None and abs(info.duration - duration_s) > _DURATION_TOLERANCE_S:
        problems.append(f"duration {info.duration:.3f} s instead of {duration_s:.3f} s")
    if info.duration <= 0:
        problems.append("no frames")
    if problems:
        raise MediaError(ErrorCode.NORMALIZE_FAILED, f"normalized {src.name} has unexpected " + ", ".join(problems))


def normalize_many(
    items: Sequence[
        tuple[Path, Path, float | None]
        | tuple[Path, Path, float | None, Sequence[int]]
        | tuple[Path, Path, float | None, Sequence[int], float]
    ],
    *,
    width: int,
    height: int,
    max_workers: int | None = None,
    fps: int = 30,
    crf: int = 20,
    preset: str = "veryfast",
) -> list[VideoInfo | MediaError]:
    """Normalize (src, dest, duration_s[, keyframes[, start_s]]) items in parallel ffmpeg processes
    (up to os.cpu_count()).

    Returns one entry per item, in order: the output's VideoInfo or the MediaError it failed with.
    """
    if not items:
        return []
    workers = max(1, min(max_workers or os.cpu_count() or 1, os.cpu_count() or 1, len(items)))

    def one(item: tuple) -> VideoInfo | MediaError:
        src, dest, duration_s, *rest = item
        try:
            return normalize_clip(
                src, dest, width=width, height=height, fps=fps, duration_s=duration_s, crf=crf, preset=preset,
                keyframes=rest[0] if rest else (), start_s=rest[1] if len(rest) > 1 else 0.0,
            )  # fmt: skip
        except MediaError as exc:
            return exc
        except Exception as exc:  # one bad clip must not stop the others
            return MediaError(ErrorCode.NORMALIZE_FAILED, f"{Path(src).name}: {type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="normalize") as pool:
        return list(pool.map(one, items))
