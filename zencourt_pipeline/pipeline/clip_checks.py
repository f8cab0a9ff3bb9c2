"""What the asset checks look at: stored photos, normalized clips, the composed video. Dagster-free.

Each function inspects one file and returns what it found plus a list of problems (empty = the
file passes). The thresholds are module constants so the checks' descriptions can quote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import probe, run_ffmpeg

# photos
MIN_PHOTO_SHORT_SIDE = 640
MAX_PHOTO_ASPECT = 3.0  # long side / short side; beyond this a crop to 16:9 or 9:16 loses the room

# clips
CLIP_CODEC = "h264"
CLIP_PIX_FMT = "yuv420p"
CLIP_DURATION_TOLERANCE_S = 0.1  # normalize trims or pads to the job's duration (whole frames)
SAMPLE_FPS = 4  # frames sampled per second for the black/frozen analysis
SAMPLE_SIZE = 64  # sampled frames are scaled to SAMPLE_SIZE x SAMPLE_SIZE grey
BLACK_LUMA = 40  # a frame whose 98th-percentile luma is below this is black (limited range: 16 = black)
MAX_BLACK_RATIO = 0.5  # a clip is black when at least this share of its sampled frames are black
FROZEN_DIFF = 0.4  # mean absolute grey difference between sampled frames below which nothing moved
MAX_FROZEN_RATIO = 0.9  # a clip is frozen when at least this share of its sampled frame pairs are still

# composed video
VIDEO_DURATION_TOLERANCE_S = 0.15


class PhotoProblemKind(StrEnum):
    """What is wrong with a stored photo: `UNDECODABLE` makes it unusable, the others only weaker."""

    UNDECODABLE = "undecodable"  # not decodable, or its stored copy not readable
    TOO_SMALL = "too_small"  # short side under MIN_PHOTO_SHORT_SIDE
    ODD_ASPECT = "odd_aspect"  # aspect beyond 1:MAX_PHOTO_ASPECT

    @property
    def unusable(self) -> bool:
        """True for a problem no clip can be made with (the check's ERROR severity), else a weaker clip."""
        return self is PhotoProblemKind.UNDECODABLE


class PhotoProblem(str):
    """One problem of a photo: reads as its message (descriptions join them) and carries its `kind`."""

    kind: PhotoProblemKind

    def __new__(cls, kind: PhotoProblemKind, message: str) -> PhotoProblem:
        """The problem `kind` described by `message`."""
        problem = super().__new__(cls, message)
        problem.kind = kind
        return problem


@dataclass(frozen=True)
class PhotoInspection:
    width: int | None = None
    height: int | None = None
    aspect: float | None = None
    problems: list[PhotoProblem] = field(default_factory=list)

    @property
    def unusable(self) -> bool:
        """True when a problem makes the photo unusable (not decodable), not just weaker."""
        return any(problem.kind.unusable for problem in self.problems)

    @property
    def passed(self) -> bool:
        """True when the photo showed no problem."""
        return not self.problems


def inspect_photo(path: Path) -> PhotoInspection:
    """Decodable, short side >= MIN_PHOTO_SHORT_SIDE, aspect within 1:MAX_PHOTO_ASPECT."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            width, height = img.size
    except Exception as exc:  # noqa: BLE001 - any decoder error means "not decodable"
        return PhotoInspection(problems=[PhotoProblem(PhotoProblemKind.UNDECODABLE, f"not decodable: {exc}")])
    short, long = min(width, height), max(width, height)
    aspect = round(long / short, 3) if short else None
    problems = []
    if short < MIN_PHOTO_SHORT_SIDE:
        problems.append(PhotoProblem(PhotoProblemKind.TOO_SMALL, f"short side {short} px < {MIN_PHOTO_SHORT_SIDE} px"))
    if aspect is None or aspect > MAX_PHOTO_ASPECT:
        problems.append(
            PhotoProblem(PhotoProblemKind.ODD_ASPECT, f"aspect {width}x{height} beyond 1:{MAX_PHOTO_ASPECT:g}")
        )
    return PhotoInspection(width, height, aspect, problems)


@dataclass(frozen=True)
class FrameStats:
    frames: int
    black_ratio: float
    frozen_ratio: float
    mean_luma: float
    motion: float  # median mean-absolute difference between consecutive sampled frames


def sample_frames(path: Path, *, fps: int = SAMPLE_FPS, size: int = SAMPLE_SIZE) -> np.ndarray:
    """(n, size, size) uint8 grey frames sampled `fps` times a second, one ffmpeg pass."""
    proc = run_ffmpeg(
        [
            "-loglevel", "error", "-i", str(path), "-map", "0:v:0", "-an",
            "-vf", f"fps={fps},scale={size}:{size}:flags=area,format=gray",
            "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1",
        ],
        timeout=300,
        code=ErrorCode.CLIP_CHECK_FAILED,
    )
    data = np.frombuffer(proc.stdout, dtype=np.uint8)
    count = data.size // (size * size)
    return data[: count * size * size].reshape(count, size, size)


def frame_stats(frames: np.ndarray) -> FrameStats:
    """Black, frozen and motion measures of a stack of grey frames (an empty stack: black, frozen)."""
    if len(frames) == 0:
        return FrameStats(0, 1.0, 1.0, 0.0, 0.0)
    as_float = frames.astype(np.float32)
    black = np.percentile(as_float.reshape(len(frames), -1), 98, axis=1) < BLACK_LUMA
    if len(frames) > 1:
        diffs = np.abs(np.diff(as_float, axis=0)).mean(axis=(1, 2))
        frozen_ratio = float((diffs < FROZEN_DIFF).mean())
        motion = float(np.median(diffs))
    else:
        frozen_ratio, motion = 1.0, 0.0
    return FrameStats(len(frames), float(black.mean()), frozen_ratio, float(as_float.mean()), motion)


@dataclass(frozen=True)
class ClipInspection:
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    size_bytes: int | None = None
    black_ratio: float | None = None
    frozen_ratio: float | None = None
    motion: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the clip showed no problem."""
        return not self.problems


def inspect_clip(path: Path, *, expected_duration_s: float, width: int, height: int) -> ClipInspection:
    """A normalized clip: its duration, frame size, codec and pixel format are what composition
    expects, and it is neither (mostly) black nor frozen."""
    try:
        info = probe(path)
        stats = frame_stats(sample_frames(path))
    except MediaError as exc:
        return ClipInspection(problems=[f"unreadable: {exc.message}"])
    problems = []
    if abs(info.duration - expected_duration_s) > CLIP_DURATION_TOLERANCE_S:
        problems.append(f"duration {info.duration:.2f} s, expected {expected_duration_s:g} s")
    if (info.width, info.height) != (width, height):
        problems.append(f"size {info.width}x{info.height}, expected {width}x{height}")
    if info.codec != CLIP_CODEC or info.pix_fmt != CLIP_PIX_FMT:
        problems.append(f"codec {info.codec}/{info.pix_fmt}, expected {CLIP_CODEC}/{CLIP_PIX_FMT}")
    if stats.black_ratio >= MAX_BLACK_RATIO:
        problems.append(f"black ({stats.black_ratio:.0%} of sampled frames)")
    if stats.frozen_ratio >= MAX_FROZEN_RATIO:
        problems.append(f"frozen (no motion in {stats.frozen_ratio:.0%} of sampled frame pairs)")
    return ClipInspection(
        duration_s=round(info.duration, 3),
        width=info.width,
        height=info.height,
        codec=info.codec,
        pix_fmt=info.pix_fmt,
        size_bytes=info.size_bytes,
        black_ratio=round(stats.black_ratio, 3),
        frozen_ratio=round(stats.frozen_ratio, 3),
        motion=round(stats.motion, 3),
        problems=problems,
    )


@dataclass(frozen=True)
class VideoInspection:
    duration_s: float | None = None
    planned_duration_s: float | None = None
    has_audio: bool | None = None
    expects_audio: bool | None = None
    thumbnail_bytes: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the composed video showed no problem."""
        return not self.problems


def inspect_composed(
    video: Path, *, planned_duration_s: float, expects_audio: bool, thumbnail: Path | None
) -> VideoInspection:
    """The composed video: duration matches the planned timeline, audio when the template has
    music or the batch a narration, a decodable thumbnail."""
    from PIL import Image

    try:
        info = probe(video)
    except MediaError as exc:
        return VideoInspection(problems=[f"unreadable: {exc.message}"])
    problems = []
    if abs(info.duration - planned_duration_s) > VIDEO_DURATION_TOLERANCE_S:
        problems.append(f"duration {info.duration:.2f} s, planned {planned_duration_s:.2f} s")
    if expects_audio and not info.has_audio:
        problems.append("no audio track although the template has music or the batch a narration")
    thumb_bytes = None
    if thumbnail is None or not Path(thumbnail).is_file():
        problems.append("no thumbnail")
    else:
        thumb_bytes = Path(thumbnail).stat().st_size
        try:
            with Image.open(thumbnail) as img:
                img.load()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"thumbnail not decodable: {exc}")
    return VideoInspection(
        duration_s=round(info.duration, 3),
        planned_duration_s=round(planned_duration_s, 3),
        has_audio=info.has_audio,
        expects_audio=expects_audio,
        thumbnail_bytes=thumb_bytes,
        problems=problems,
    )
