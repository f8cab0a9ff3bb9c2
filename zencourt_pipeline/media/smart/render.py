"""Smart rendering: re-encode only what the composition changes, stream-copy the rest.

Normalized clips (`normalize_clip`) share one encoding: byte-identical H.264 parameter sets
(x264 `stitchable`), closed GOPs of at most one second with keyframes where the planned
composition starts or stops changing the clip (`plan.clip_keyframes`), one mp4 timescale. A composed
timeline only changes pixels in a few places: the crossfades, the spans under the title/caption
overlays, the fade in/out and the end card. Everything else is a run of whole GOPs of some clip,
shown unchanged.

So the timeline (in output frames) is cut into pieces:

* copy pieces: runs of whole GOPs of one clip that no change touches, cut out of the clip with
  the segment muxer (`-c copy`, cut exactly at keyframes), bit-identical to the clip;
* render pieces: the windows in between, each rendered by the same filter graph as the full
  composition (`graphs.compose_filter`, restricted to the window: clips are read from a
  frame-accurate seek, overlays and xfade offsets are shifted) and encoded with exactly the
  settings of the normalized clips (only the CRF is the composition's own).

Windows render in parallel (as many as the cores and the memory budget allow, one x264 thread
each) while the copied spans are cut and the audio is encoded; everything is then joined by
the concat demuxer with `-c copy` (exact piece durations in the script).

Audio (music, narration): the windows render video only (`plan.window_plan` drops the audio
tracks); the whole timeline's audio, the music ducked under the narration by its gain automation
and the mix normalized, is encoded once by `mix.audio_args` from the same chains the full graph
uses, so a smart render's sound is the full render's. A timeline whose last clip is held to make
room for a narration longer than the clips shows frames that clip does not have: `checks.qualify`
refuses it (the clip has fewer frames than its out point) and it takes the full path, whose graph
holds the last frame (`tpad`). The result is accepted
only if its sample index is sound (frame count, one frame duration, closed GOPs, the same
parameter sets everywhere) and every keyframe, so every splice, decodes without an error
(`-xerror`; `check="decode"` decodes every frame). Anything that does not qualify raises `SmartUnavailable`; anything that goes
wrong raises `MediaError`; `compose_video` then falls back to the full re-encode.

The same machinery, with render pieces only, is the full re-encode for timelines too large for one
graph's memory (`render_segmented`): windows of about two clips, cut on whole output seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs, mix
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.mp4index import VideoTrackIndex, read_video_index
from zencourt_pipeline.media.smart import splicing
from zencourt_pipeline.media.smart.checks import check_joined, check_piece, qualify
from zencourt_pipeline.media.smart.plan import (
    WORTH_IT,
    SmartPlan,
    SmartUnavailable,
    estimated_cost,
    plan_pieces,
    plan_segmented,
    window_clip_count,
    window_plan,
)
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.model import Timeline

# Peak memory model of one ffmpeg composition pass, in frames of width x height yuv420p:
# x264 (veryfast, default threads: lookahead, frame threads, B-frames) holds ~95 frames' worth,
# each open clip decoder ~10 (~7 with one decoder thread); ffmpeg itself ~30 MB. Measured at 720p
# and 1080x1920 on ffmpeg 9. The default budget keeps the whole process tree (with Python) <= 500 MB.
_X264_FRAMES = 95
_DECODER_FRAMES = 10
_DECODER_FRAMES_ONE_THREAD = 7
_FFMPEG_BASE_MB = 30
MEMORY_BUDGET_MB = 400


def pass_memory_mb(width: int, height: int, decoders: int, *, decoder_threads: int | None = None) -> float:
    """Estimated peak RSS (MB) of one composition pass with `decoders` clips open at once."""
    frame_mb = width * height * 1.5 / (1024 * 1024)
    per_decoder = _DECODER_FRAMES_ONE_THREAD if decoder_threads == 1 else _DECODER_FRAMES
    return _FFMPEG_BASE_MB + frame_mb * (_X264_FRAMES + per_decoder * decoders)


@dataclass(frozen=True)
class SmartOutcome:
    plan: SmartPlan
    frame_count: int
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


# ---------------------------------------------------------------- qualification


# ---------------------------------------------------------------- execution


def _windows_mb(tl: Timeline, smart: SmartPlan, decoder_threads: int | None) -> float:
    return max(
        (
            pass_memory_mb(
                tl.width,
                tl.height,
                window_clip_count(tl, p.start, p.end),
                decoder_threads=decoder_threads,
            )
            for p in smart.pieces
            if p.clip is None
        ),
        default=0.0,
    )


def _execute(*args, **kwargs) -> SmartOutcome:
    """`_run_pieces`, with unexpected errors (a malformed piece, a full disk) as MediaError."""
    try:
        return _run_pieces(*args, **kwargs)
    except (OSError, ValueError, IndexError) as exc:  # struct.error is a ValueError
        raise MediaError(ErrorCode.COMPOSITION_FAILED, f"smart/windowed render: {type(exc).__name__}: {exc}") from exc


def _run_pieces(
    tl: Timeline,
    assets: RenderAssets,
    smart: SmartPlan,
    indexes: list[VideoTrackIndex] | None,
    dest: Path,
    *,
    work: Path,
    preset: str,
    crf: int,
    check: str,
    memory_mb: float,
    workers: int | None,
) -> SmartOutcome:
    """Render/copy the pieces, join them with the audio into `dest`, validate the result."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    pool_size, encoder_threads = _pool(tl, smart, memory_mb, workers)
    pieces_dir = Path(tempfile.mkdtemp(prefix=".smart-", dir=work)).resolve()
    try:
        splits, cut_files, files = _clip_splits(tl, smart, indexes, pieces_dir)
        _run_all(splits, pool_size)
        jobs: list[tuple[int, list[str]]] = []
        for k, piece in enumerate(smart.pieces):
            if piece.clip is None:
                files[k] = pieces_dir / f"render_{k:03d}.mp4"
                window, window_assets = window_plan(tl, assets, piece.start, piece.end, cut_files)
                args = graphs.compose_args(
                    window, window_assets, files[k], preset=preset, crf=crf, faststart=False,
                    decoder_threads=DECODER_THREADS, encoder_threads=encoder_threads,
                )  # fmt: skip
                jobs.append((piece.frames, args))
        music = assets.soundtrack if tl.audio else None  # the mix already encoded: joined as it is
        if tl.audio and music is None:  # the whole mix (music, narration), encoded while the windows render
            music = pieces_dir / "audio.m4a"
            jobs.append((1, mix.audio_args(tl, assets, music)))
        jobs.sort(key=lambda job: -job[0])
        _run_all([args for _, args in jobs], pool_size)
        seconds["pieces"] = time.perf_counter() - clock
        avcc = _join(tl, smart, indexes, [files[k] for k in range(len(smart.pieces))], pieces_dir, dest, music)
        seconds["join"] = time.perf_counter() - clock - seconds["pieces"]
        frames = check_joined(dest, smart.total_frames, tl.fps, avcc, check)
        seconds["check"] = time.perf_counter() - clock - seconds["pieces"] - seconds["join"]
    finally:
        shutil.rmtree(pieces_dir, ignore_errors=True)
    return SmartOutcome(plan=smart, frame_count=frames, seconds=seconds)


# One decoder thread per clip: a window decodes 1-3 clips and each keeps up with x264 alone.
DECODER_THREADS = 1


def _pool(tl: Timeline, smart: SmartPlan, memory_mb: float, workers: int | None) -> tuple[int, int | None]:
    """How many ffmpeg passes run side by side (cores, memory budget), and x264's threads in each."""
    per_window = _windows_mb(tl, smart, DECODER_THREADS)
    cpus = os.cpu_count() or 1
    fit = max(1, int(memory_mb // per_window)) if per_window > 0 else cpus
    pool_size = max(1, min(workers or cpus, cpus, fit))
    windows = sum(1 for p in smart.pieces if p.clip is None)
    # Windows side by side, one x264 thread each: x264's frame threads cost ~25-35% more CPU per
    # frame than one thread, and short windows barely fill their pipeline. One window at a time
    # (memory-bound or a single window) keeps x264's own threading.
    encoder_threads = max(1, cpus // pool_size) if pool_size > 1 and windows > 1 else None
    return pool_size, encoder_threads


def _clip_splits(
    tl: Timeline, smart: SmartPlan, indexes: list[VideoTrackIndex] | None, pieces_dir: Path
) -> tuple[list[list[str]], dict[tuple[int, int], Path], dict[int, Path]]:
    """One stream-copy split per clip, cut at every boundary of its copied spans: the split
    commands, the cut files by (clip, first frame) (the windows read them instead of seeking),
    and the copied pieces' files by piece index."""
    splits: list[list[str]] = []
    cut_files: dict[tuple[int, int], Path] = {}
    files: dict[int, Path] = {}
    for j, clip in enumerate(c.source for c in tl.clips):
        spans = [(k, p) for k, p in enumerate(smart.pieces) if p.clip == j]
        if not spans or indexes is None:
            continue
        cuts = sorted({b for _, p in spans for b in (p.clip_start, p.clip_start + p.frames)} - {0})
        cuts = [c for c in cuts if c < indexes[j].sample_count]
        splits.append(splicing.split_args(Path(clip), cuts, pieces_dir / f"clip{j:03d}_%03d.mp4"))
        for n, first in enumerate([0, *cuts]):
            cut_files[(j, first)] = pieces_dir / f"clip{j:03d}_{n:03d}.mp4"
        for k, p in spans:
            files[k] = cut_files[(j, p.clip_start)]
    return splits, cut_files, files


def _join(
    tl: Timeline, smart: SmartPlan, indexes: list[VideoTrackIndex] | None, ordered: list[Path],
    pieces_dir: Path, dest: Path, music: Path | None,
) -> bytes | None:
    """Check every piece, then join them (and the audio) by stream copy; the parameter sets."""
    avcc = None
    for path, piece in zip(ordered, smart.pieces, strict=True):
        avcc = check_piece(path, piece.frames, avcc, tl.fps)
    if indexes is not None and avcc != indexes[0].avcc:
        raise MediaError(ErrorCode.COMPOSITION_FAILED, "re-encoded pieces have other parameter sets than the clips")
    listing = pieces_dir / "pieces.ffconcat"
    listing.write_text(splicing.concat_list(ordered, [p.frames for p in smart.pieces], tl.fps), encoding="utf-8")
    run_ffmpeg(splicing.join_args(listing, dest, music=music), code=ErrorCode.COMPOSITION_FAILED)
    return avcc


def _run_all(commands: list[list[str]], workers: int) -> None:
    """Run ffmpeg `commands` on up to `workers` threads; the first failure cancels the rest."""
    if not commands:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(commands))), thread_name_prefix="smart") as pool:
        futures = [pool.submit(run_ffmpeg, args, code=ErrorCode.COMPOSITION_FAILED) for args in commands]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()  # the ones not started yet
            raise


def _indexes(tl: Timeline) -> list[VideoTrackIndex]:
    cache: dict[Path, VideoTrackIndex] = {}
    indexes = []
    for clip in (c.source for c in tl.clips):
        key = Path(clip).resolve()
        if key not in cache:
            try:
                cache[key] = read_video_index(key)
            except (MediaError, OSError, ValueError, IndexError) as exc:  # struct.error is a ValueError
                raise SmartUnavailable(f"{Path(clip).name}: {exc}") from exc
        indexes.append(cache[key])
    return indexes


def render_smart(
    tl: Timeline,
    assets: RenderAssets,
    dest: Path,
    *,
    work: Path,
    preset: str = "veryfast",
    crf: int = 23,
    check: str = "keyframes",
    require_gain: bool = True,
    memory_mb: float = MEMORY_BUDGET_MB,
    workers: int | None = None,
) -> SmartOutcome:
    """Smart-render `tl` (with its rendered `assets`) to `dest` (MP4). SmartUnavailable / MediaError when it cannot.

    check: "index" checks the result's sample index (frame count, one frame duration, closed
    GOPs, the parameter sets of every piece); "keyframes" (default) also decodes every keyframe
    of the result (`-xerror`): every piece starts with an IDR frame and no GOP reaches across a
    splice, so that exercises every splice with the joined parameter sets; "decode" decodes every
    frame. `require_gain`: SmartUnavailable unless the estimated cost is below `WORTH_IT` of a
    full render.
    """
    if any(assets.rescale):
        raise SmartUnavailable("clips need rescaling")
    indexes = _indexes(tl)
    qualify(tl, indexes, preset)
    smart = plan_pieces(tl, [ix.gops() for ix in indexes])
    if smart.copied_frames == 0:
        raise SmartUnavailable("no whole GOP of any clip is left unchanged by the composition")
    cost = estimated_cost(smart, check=check)
    if require_gain and cost > WORTH_IT:
        raise SmartUnavailable(
            f"only {smart.copied_frames} of {smart.total_frames} frames can be stream-copied "
            f"(estimated {cost:.0%} of a full render)"
        )
    return _execute(
        tl, assets, smart, indexes, dest, work=work, preset=preset, crf=crf, check=check,
        memory_mb=memory_mb, workers=workers,
    )  # fmt: skip


def render_segmented(
    tl: Timeline,
    assets: RenderAssets,
    dest: Path,
    *,
    work: Path,
    preset: str = "veryfast",
    crf: int = 23,
    check: str = "keyframes",
    memory_mb: float = MEMORY_BUDGET_MB,
    workers: int | None = None,
) -> SmartOutcome:
    """Full re-encode of `tl` in windows of about two clips each, joined by stream copy.

    Same pixels and encoder settings as the one-pass graph, but never more than a few decoders
    and one or two x264 instances alive at once: bounded memory for long, large timelines.
    """
    smart = plan_segmented(tl)
    if len(smart.pieces) < 2:
        raise SmartUnavailable("the timeline has no place to cut between windows")
    return _execute(
        tl, assets, smart, None, dest, work=work, preset=preset, crf=crf, check=check,
        memory_mb=memory_mb, workers=workers,
    )  # fmt: skip
