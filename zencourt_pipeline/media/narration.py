"""A batch's narration file (issue 14 point 4): is it usable, and what the timeline needs of it.

`check_narration` judges the file itself (the pipeline sniffs its first bytes before, `net.sniff`):
one audio stream in MP3, AAC (ADTS or in an M4A) or PCM (WAV), no picture beyond cover art, read to
its end without damage (one `-c copy` pass, no decode), at most `NARRATION_MAX_SECONDS` and
`NARRATION_MAX_BYTES`; otherwise `MediaError` with `NARRATION_INVALID`, `NARRATION_TOO_LARGE` or
`NARRATION_TOO_LONG`.

`analyze_narration` measures what the timeline reads (`timeline.narration.Narration`): the
integrated loudness (ebur128) and the speech spans, found by silence detection at a threshold
relative to that loudness (`SILENCE_BELOW_LU` under it), so a quiet recording and a loud one are
cut the same way. Both are audio-only passes over a file of at most a few minutes: well under a
second of CPU for a minute of speech.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import loudness
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import read_through, run_ffmpeg
from zencourt_pipeline.media.timeline.narration import Narration

NARRATION_MAX_SECONDS = 300.0  # five minutes: longer than 30 clips of 10 s with the hold
NARRATION_MAX_BYTES = 50 * 1024 * 1024  # five minutes of 44.1 kHz 16-bit stereo WAV fit (~53 MB: 50 MiB)
SILENCE_BELOW_LU = 25.0  # quieter than the voice's integrated loudness by this much is a pause
SILENCE_MIN_S = 0.35  # pauses shorter than this are inside speech
CODECS = {"mp3": "mp3", "aac": "aac", "pcm": "wav"}  # the ffmpeg codec (prefix) -> the kind accepted

_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio): (\w+)(.*)$", re.MULTILINE)
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_READ_TO = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")
_DAMAGE = ("partial file", "Invalid data found", "corrupt", "Truncat", "moov atom not found", "Header missing")
_SILENCE_START = re.compile(r"silence_start: (-?[\d.]+)")
_SILENCE_END = re.compile(r"silence_end: (-?[\d.]+)")


@dataclass(frozen=True, slots=True)
class NarrationFile:
    """A usable narration file: its kind (`mp3`, `aac`, `wav`), length and size."""

    kind: str
    duration_s: float
    size_bytes: int


def check_narration(
    path: Path, *, max_seconds: float = NARRATION_MAX_SECONDS, max_bytes: int = NARRATION_MAX_BYTES
) -> NarrationFile:
    """The narration at `path` if it is a usable voice-over; MediaError saying why not."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if size == 0:
        raise MediaError(ErrorCode.NARRATION_INVALID, "the narration file is empty (0 bytes)")
    if size > max_bytes:
        raise MediaError(
            ErrorCode.NARRATION_TOO_LARGE, f"the narration file has {size} bytes (at most {max_bytes})"
        )
    returncode, report = read_through(path, streams="0:a?", slow_code=ErrorCode.NARRATION_TOO_LONG, what="narration")
    streams = _STREAM.findall(report)
    video = [codec for kind, codec, rest in streams if kind == "Video" and "attached pic" not in rest]
    audio = [codec for kind, codec, _ in streams if kind == "Audio"]
    if video:
        raise MediaError(ErrorCode.NARRATION_INVALID, "the narration is a video, not an audio file (MP3, WAV, M4A, AAC)")
    if not audio:
        raise MediaError(ErrorCode.NARRATION_INVALID, "the narration has no audio stream (an MP3, WAV, M4A or AAC file)")
    kind = next((name for prefix, name in CODECS.items() if audio[0].startswith(prefix)), None)
    if kind is None:
        raise MediaError(ErrorCode.NARRATION_INVALID, f"the narration is {audio[0]} audio (MP3, AAC or PCM WAV accepted)")
    if returncode != 0 or any(marker in report for marker in _DAMAGE):
        raise MediaError(ErrorCode.NARRATION_INVALID, "the narration is cut short or damaged: it does not read to its end")
    # what the pass read (a raw ADTS or MP3 stream's header "Duration" is a bitrate estimate)
    found = _READ_TO.findall(report)[-1:] or _DURATION.findall(report)[:1]
    seconds = int(found[0][0]) * 3600 + int(found[0][1]) * 60 + float(found[0][2]) if found else 0.0
    if seconds <= 0:
        raise MediaError(ErrorCode.NARRATION_INVALID, "the narration has no duration")
    if seconds > max_seconds:
        raise MediaError(ErrorCode.NARRATION_TOO_LONG, f"the narration lasts {seconds:.1f} s (at most {max_seconds:g} s)")
    return NarrationFile(kind=kind, duration_s=round(seconds, 3), size_bytes=size)


def speech_from_silences(silences: list[tuple[float, float]], duration_s: float) -> tuple[tuple[float, float], ...]:
    """The spans of `[0, duration_s]` outside the `silences` (pure)."""
    speech, at = [], 0.0
    for start, end in sorted(silences):
        if start > at:
            speech.append((round(at, 3), round(min(start, duration_s), 3)))
        at = max(at, end)
    if at < duration_s:
        speech.append((round(at, 3), round(duration_s, 3)))
    return tuple((a, b) for a, b in speech if b > a)


def _silences(report: str, duration_s: float) -> list[tuple[float, float]]:
    starts = [max(0.0, float(x)) for x in _SILENCE_START.findall(report)]
    ends = [float(x) for x in _SILENCE_END.findall(report)]
    ends += [duration_s] * (len(starts) - len(ends))  # a silence running to the end has no end line
    return list(zip(starts, ends, strict=True))


def analyze_narration(path: Path, *, identifies_agent: bool = True, duration_s: float | None = None) -> Narration:
    """What the timeline needs of the narration at `path` (checked by `check_narration`): its
    length, loudness and speech spans (`timeline.narration.Narration`)."""
    duration = duration_s if duration_s is not None else check_narration(path).duration_s
    measured = loudness.measure(Path(path))
    lufs = measured.integrated_lufs
    if lufs == float("-inf") or lufs < -70:
        return Narration(str(path), duration, (), None, identifies_agent)  # silence: nothing to duck under
    noise = max(-70.0, lufs - SILENCE_BELOW_LU)
    proc = run_ffmpeg(
        ["-i", str(path), "-map", "0:a:0", "-af", f"silencedetect=noise={noise:.1f}dB:d={SILENCE_MIN_S:g}", "-f", "null", "-"],
        timeout=300,
    )
    silences = _silences(proc.stderr.decode(errors="replace"), duration)
    return Narration(str(path), duration, speech_from_silences(silences, duration), round(lufs, 2), identifies_agent)
