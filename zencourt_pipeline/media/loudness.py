"""Loudness (EBU R128): the -14 LUFS / -1 dBTP delivery target, measured and met in two passes.

Platforms normalise playback to about -14 LUFS integrated; outputs are delivered at -14 +-1 LUFS
with true peak at or below -1 dBTP. The only audio of a composed video is its music bed, so the
first pass measures the bed alone (audio only, about a second for a 30 s bed: `measure_bed`) and the
second applies `loudnorm` with those measurements in linear mode (one gain, fades and dynamics
kept) inside the normal encode (`mix.audio_chain`): no extra video pass. `measure` reads a
finished file with the `ebur128` filter (true peak) for the validation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import run_ffmpeg

TARGET_LUFS = -14.0
TOLERANCE_LU = 1.0
MAX_TRUE_PEAK_DBTP = -1.0
ENCODE_TRUE_PEAK_DBTP = -1.5  # aim under the limit: AAC encoding adds a little overshoot
TARGET_LRA = 11.0
_LOUDNORM = f"loudnorm=I={TARGET_LUFS:g}:TP={ENCODE_TRUE_PEAK_DBTP:g}:LRA={TARGET_LRA:g}"


@dataclass(frozen=True, slots=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float
    lra_lu: float


_SUMMARY = re.compile(r"Summary:(.*)", re.S)
_I = re.compile(r"I:\s+(-?[\d.]+|-inf) LUFS")
_LRA = re.compile(r"LRA:\s+(-?[\d.]+) LU")
_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-inf) dBFS")


def _number(pattern: re.Pattern, text: str) -> float:
    found = pattern.search(text)
    if found is None:
        raise MediaError(
            ErrorCode.FFMPEG_FAILED, f"no {pattern.pattern.split(':')[0]} in the ebur128 summary"
        )
    return float("-inf") if found.group(1) == "-inf" else float(found.group(1))


def measure(path: Path) -> Loudness:
    """Integrated loudness, true peak and loudness range of the audio of `path` (ebur128)."""
    proc = run_ffmpeg(
        ["-i", str(path), "-vn", "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"], timeout=300
    )
    summary = _SUMMARY.search(proc.stderr.decode(errors="replace"))
    if summary is None:
        raise MediaError(ErrorCode.FFMPEG_FAILED, "ebur128 printed no summary")
    text = summary.group(1)
    return Loudness(_number(_I, text), _number(_PEAK, text), _number(_LRA, text))


def second_pass_filter(measured: dict[str, str]) -> str:
    """The `loudnorm` filter of the second pass, from the first pass's JSON report."""
    return (
        f"{_LOUDNORM}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true,aresample=48000"
    )


def measure_bed(music_args: list[str], chain: str, label: str = "aout") -> str:
    """First pass over a music bed: `music_args` are its inputs, `chain` the filter graph ending in
    `[label]`; returns the second pass's filter (`second_pass_filter`). Measured on every call: the
    outputs that share a mix share its measurement through their caller (`soundtrack.Soundtrack`)."""
    graph = f"{chain};[{label}]{_LOUDNORM}:print_format=json[measured]"
    proc = run_ffmpeg(
        [*music_args, "-filter_complex", graph, "-map", "[measured]", "-f", "null", "-"], timeout=300
    )
    report = proc.stderr.decode(errors="replace")
    start = report.rfind("{")
    try:
        measured = json.loads(report[start : report.index("}", start) + 1])
        return second_pass_filter(measured)
    except (ValueError, KeyError) as exc:
        raise MediaError(ErrorCode.FFMPEG_FAILED, f"loudnorm printed no measurement: {exc}") from exc
