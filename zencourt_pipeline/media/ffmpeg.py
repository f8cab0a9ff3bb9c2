"""Running the ffmpeg binary that imageio-ffmpeg ships, and probing files with it.

The shipped build has no ffprobe, so `probe` reads ffmpeg's own stream report (and, with
`count_frames`, a stream-copy pass to the null muxer).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError


@cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(
    args: list[str], *, timeout: float = 900, input: bytes | None = None, code: str = ErrorCode.FFMPEG_FAILED
) -> subprocess.CompletedProcess:
    """Run ffmpeg with `args` (without the binary); raise MediaError with the stderr tail on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(code, f"ffmpeg timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-6:]
        raise MediaError(code, "ffmpeg failed: " + " | ".join(tail))
    return proc


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    fps: float
    duration: float
    pix_fmt: str | None
    has_audio: bool
    audio_codec: str | None
    rotation: int
    size_bytes: int
    frame_count: int | None = None
    video_profile: str | None = None  # e.g. "High", "Main"
    video_kbps: int | None = None
    audio_profile: str | None = None  # e.g. "LC", "HE-AAC"
    audio_sample_rate: int | None = None
    audio_channels: str | None = None  # "mono", "stereo", "5.1(side)", ...
    audio_kbps: int | None = None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+[^:]*: Video: (\w+)[^\n]*")
_AUDIO = re.compile(r"Stream #\d+:\d+[^:]*: Audio: (\w+)[^\n]*")
_PROFILE = re.compile(r": (?:Video|Audio): \w+ \(([^)]+)\)")
_KBPS = re.compile(r"(\d+) kb/s")
_AUDIO_PARAMS = re.compile(r"(\d+) Hz, ([^,]+)")
_SIZE = re.compile(r"(?<![0-9x])(\d{2,5})x(\d{2,5})(?![0-9x])")
_FPS = re.compile(r"([\d.]+(?:k)?) fps")
_TBR = re.compile(r"([\d.]+(?:k)?) tbr")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees|rotate\s*:\s*(-?\d+)")
_FRAME = re.compile(r"frame=\s*(\d+)")
_PIXFMT = re.compile(r"Video: \w+[^,]*, (\w+)")


READ_THROUGH_TIMEOUT_S = 120.0  # one copy pass over a bounded input file


def read_through(path: Path, *, streams: str, slow_code: ErrorCode, what: str) -> tuple[int, str]:
    """One pass over every packet of `streams` (an ffmpeg `-map`, e.g. `0` or `0:a?`) of `path`,
    copied to nowhere: (ffmpeg's exit code, its report). A file that takes longer than
    READ_THROUGH_TIMEOUT_S raises MediaError(`slow_code`) naming `what` it is."""
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", streams, "-c", "copy", "-f", "null", "-"]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=READ_THROUGH_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(slow_code, f"reading the {what} took over {READ_THROUGH_TIMEOUT_S:.0f} s") from exc
    return proc.returncode, proc.stderr.decode(errors="replace")


def _rate(text: str) -> float:
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def probe(path: Path, *, count_frames: bool = False) -> VideoInfo:
    """Codec, size, frame rate and duration of the first video stream of `path`."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(ErrorCode.INVALID_INPUT, f"no such file: {path}")
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    if count_frames:
        args += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    proc = subprocess.run(args, capture_output=True, timeout=300)
    report = proc.stderr.decode(errors="replace")
    video = _VIDEO.search(report)
    if video is None:
        if "Invalid data found" in report or "moov atom not found" in report:
            raise MediaError(ErrorCode.MEDIA_TRUNCATED, f"{path.name} is not a complete media file")
        raise MediaError(ErrorCode.INVALID_INPUT, f"{path.name} has no video stream")
    line = video.group(0)
    size = _SIZE.search(line)
    fps = _FPS.search(line) or _TBR.search(line)
    duration = _DURATION.search(report)
    audio = _AUDIO.search(report)
    rotation = _ROTATION.search(report)
    pix = _PIXFMT.search(line)
    audio_line = audio.group(0) if audio else ""
    audio_params = _AUDIO_PARAMS.search(audio_line)
    frames = None
    if count_frames:
        if proc.returncode != 0:
            raise MediaError(ErrorCode.MEDIA_TRUNCATED, f"{path.name} could not be read to the end")
        found = _FRAME.findall(report)
        frames = int(found[-1]) if found else None
    seconds = 0.0
    if duration:
        hours, minutes, secs = duration.groups()
        seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs)
    rot = 0
    if rotation:
        rot = int(round(float(rotation.group(1) or rotation.group(2)))) % 360
    return VideoInfo(
        codec=video.group(1),
        width=int(size.group(1)) if size else 0,
        height=int(size.group(2)) if size else 0,
        fps=_rate(fps.group(1)) if fps else 0.0,
        duration=seconds,
        pix_fmt=pix.group(1) if pix else None,
        has_audio=audio is not None,
        audio_codec=audio.group(1) if audio else None,
        rotation=rot,
        size_bytes=path.stat().st_size,
        frame_count=frames,
        video_profile=_first(_PROFILE, line),
        video_kbps=_int(_first(_KBPS, line)),
        audio_profile=_first(_PROFILE, audio_line),
        audio_sample_rate=int(audio_params.group(1)) if audio_params else None,
        audio_channels=audio_params.group(2).strip() if audio_params else None,
        audio_kbps=_int(_first(_KBPS, audio_line)),
    )


def _first(pattern: re.Pattern, text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None


def _int(text: str | None) -> int | None:
    return int(text) if text else None
