"""Smart rendering, the checks: whether clips qualify for splicing, whether each rendered piece
matches the clips' encoding, and whether the joined result decodes without an error."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.mp4index import VideoTrackIndex, read_video_index
from zencourt_pipeline.media.smart import splicing
from zencourt_pipeline.media.smart.plan import SmartUnavailable
from zencourt_pipeline.media.timeline.model import Timeline


@cache
def reference_avcc(width: int, height: int, fps: int, preset: str) -> bytes | None:
    """The parameter sets (avcC) our encoder settings produce at this size: one black frame."""
    with tempfile.TemporaryDirectory(prefix="zc-avcc-") as tmp:
        out = Path(tmp) / "ref.mp4"
        args = [
            "-f", "lavfi", "-i", f"color=c=black:s={width}x{height}:r={fps}",
            "-vf", f"setsar=1,format=yuv420p,{graphs.COLOR_TAGS_FILTER}", "-frames:v", "1",
            *graphs.x264_args(preset=preset, crf=23, fps=fps), *graphs.COLOR_ARGS,
            "-an", "-video_track_timescale", str(graphs.VIDEO_TIMESCALE), "-f", "mp4", str(out),
        ]  # fmt: skip
        run_ffmpeg(args, timeout=120, code=ErrorCode.COMPOSITION_FAILED)
        return read_video_index(out).avcc


def qualify(tl: Timeline, indexes: list[VideoTrackIndex], preset: str) -> None:
    """Raise SmartUnavailable unless every clip is a normalized clip smart rendering can splice
    (one codec, size, timing and parameter sets, closed GOPs from frame 0, enough frames)."""
    fps = tl.fps
    first = indexes[0]
    for j, ix in enumerate(indexes):
        name = Path(tl.clips[j].source).name
        problems = []
        if ix.codec != "avc1" or ix.avcc is None:
            problems.append(f"codec {ix.codec or 'unknown'}")
        if (ix.width, ix.height) != (tl.width, tl.height):
            problems.append(f"size {ix.width}x{ix.height}")
        if ix.timescale != graphs.VIDEO_TIMESCALE or ix.frame_delta != graphs.VIDEO_TIMESCALE // fps:
            problems.append(f"timing {ix.frame_delta}/{ix.timescale}")
        if not ix.closed_gops or not ix.edit_ok or not ix.keyframes or ix.keyframes[0] != 0:
            problems.append("open GOPs or an edit list")
        if ix.sample_count < tl.clips[j].out_frame:
            problems.append(f"{ix.sample_count} frames, {tl.clips[j].out_frame} needed")
        opts = ix.encoder_options
        if opts.get("stitchable") != "1" or opts.get("open_gop") != "0":
            problems.append("not encoded by normalize_clip (x264 stitchable, closed GOP)")
        if ix.avcc != first.avcc:
            problems.append("parameter sets differ from the first clip")
        if problems:
            raise SmartUnavailable(f"clip {j} ({name}): " + ", ".join(problems))
    if first.avcc != reference_avcc(tl.width, tl.height, fps, preset):
        raise SmartUnavailable(
            f"clips were encoded with other x264 settings than preset {preset!r} at this size"
        )


def check_piece(path: Path, frames: int, avcc: bytes | None, fps: int) -> bytes | None:
    """Check one piece (frames, IDR first, closed GOPs, timing, same parameter sets as the
    previous pieces); returns its parameter sets."""
    ix = read_video_index(path)
    problems = []
    if ix.sample_count != frames:
        problems.append(f"{ix.sample_count} frames instead of {frames}")
    if not ix.keyframes or ix.keyframes[0] != 0 or not ix.closed_gops:
        problems.append("does not start with a keyframe or has open GOPs")
    if ix.timescale != graphs.VIDEO_TIMESCALE or ix.frame_delta != graphs.VIDEO_TIMESCALE // fps:
        problems.append("irregular timing")
    if ix.avcc is None or (avcc is not None and ix.avcc != avcc):
        problems.append("other parameter sets than the previous pieces")
    if problems:
        raise MediaError(ErrorCode.COMPOSITION_FAILED, f"piece {path.name}: " + ", ".join(problems))
    return ix.avcc


def decode_check(video: Path, *, keyframes_only: bool = False) -> int:
    """Decode `video` completely (or only its keyframes); MediaError on any decoder/demuxer error;
    returns the number of frames decoded."""
    proc = run_ffmpeg(splicing.decode_check_args(video, keyframes_only=keyframes_only), code=ErrorCode.COMPOSITION_FAILED)
    errors = proc.stderr.decode(errors="replace").strip()
    if errors:
        raise MediaError(ErrorCode.COMPOSITION_FAILED, f"{video.name} decodes with errors: {errors[:300]}")
    frames = [
        int(line.split("=", 1)[1])
        for line in proc.stdout.decode(errors="replace").splitlines()
        if line.startswith("frame=")
    ]
    return frames[-1] if frames else 0


def check_joined(dest: Path, total_frames: int, fps: int, avcc: bytes | None, check: str) -> int:
    """The joined video's index is sound (frame count, one frame duration, closed GOPs, its
    pieces' parameter sets) and, with `check` "decode" or "keyframes", it decodes to the frames it
    should; returns its frame count."""
    joined = read_video_index(dest)
    problems = []
    if joined.sample_count != total_frames:
        problems.append(f"{joined.sample_count} frames instead of {total_frames}")
    if joined.frame_delta != graphs.VIDEO_TIMESCALE // fps:
        problems.append("irregular frame timing")
    if not joined.closed_gops:
        problems.append("open or misordered GOPs")
    if joined.avcc != avcc:
        problems.append("other parameter sets than its pieces")
    if problems:
        raise MediaError(ErrorCode.COMPOSITION_FAILED, "joined video has " + ", ".join(problems))
    if check in ("decode", "keyframes"):
        decoded = decode_check(dest, keyframes_only=check == "keyframes")
        wanted = len(joined.keyframes) if check == "keyframes" else total_frames
        if decoded != wanted:
            raise MediaError(ErrorCode.COMPOSITION_FAILED, f"smart render decodes to {decoded} frames instead of {wanted}")
    return joined.sample_count
