"""The stream-copy commands of smart rendering: cut clips at keyframes, join pieces, check the
result. No filter graph here (those are all in `graphs.py`); pure argument building."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zencourt_pipeline.media.ffargs import mp4_output


def split_args(clip: Path, cut_frames: list[int], pattern: Path) -> list[str]:
    """Stream-copy `clip` into pieces cut at the keyframes `cut_frames` (pattern has one %d)."""
    return [
        "-i", str(clip), "-map", "0:v:0", "-c", "copy",
        "-f", "segment", "-segment_frames", ",".join(str(f) for f in cut_frames),
        "-reset_timestamps", "1", "-segment_format", "mp4",
        "-map_metadata", "-1", str(pattern),
    ]  # fmt: skip


def _concat_quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_list(pieces: list[Path], frames: Sequence[int] | None = None, fps: int = 30) -> str:
    """An ffconcat script joining `pieces` (identically encoded MP4s) in order.

    `frames` (per piece) writes each piece's exact duration: without it the concat demuxer takes
    the file's duration, which MP4 stores in milliseconds, and a piece of a non-whole number of
    milliseconds (53 frames = 1766.67 ms) shifts every later timestamp by the rounding.
    """
    lines = ["ffconcat version 1.0"]
    for k, piece in enumerate(pieces):
        lines.append(f"file {_concat_quote(piece)}")
        if frames is not None:
            lines.append(f"duration {frames[k] / fps:.6f}")
    return "\n".join(lines) + "\n"


def join_args(listing: Path, dest: Path, *, music: Path | None = None) -> list[str]:
    """Concat the pieces and mux the encoded music bed, all by stream copy."""
    args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    if music is not None:
        args += ["-i", str(music), "-map", "0:v:0", "-map", "1:a:0"]
    else:
        args += ["-map", "0:v:0", "-an"]
    return [
        *args, "-c", "copy",
        "-sn", "-dn", "-map_metadata", "-1",
        *mp4_output(dest),
    ]  # fmt: skip


def decode_check_args(video: Path, *, keyframes_only: bool = False) -> list[str]:
    """Decode every stream to the null muxer, stopping at the first error; frame count on stdout.

    The deblocking filter is skipped: it only post-processes pixels; every macroblock of every
    frame is still parsed and reconstructed, which is what finds a broken or mis-joined stream.
    `keyframes_only` decodes only the video's keyframes (and no audio).
    """
    args = ["-v", "error", "-nostats", "-xerror", "-progress", "pipe:1", "-skip_loop_filter", "all"]
    if keyframes_only:
        return [*args, "-skip_frame", "nokey", "-i", str(video), "-map", "0:v:0", "-f", "null", "-"]
    return [*args, "-i", str(video), "-map", "0", "-f", "null", "-"]
