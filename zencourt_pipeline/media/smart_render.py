"""Smart rendering: re-encode only what the composition changes, stream-copy the rest.

Normalized clips (`normalize_clip`) share one encoding: byte-identical H.264 parameter sets
(x264 `stitchable`), closed one-second GOPs, one mp4 timescale. A composed timeline only changes
pixels in a few places: the crossfades, the spans under the title/caption overlays, the fade
in/out and the end card. Everything else is a run of whole GOPs of some clip, shown unchanged.

So the timeline (in output frames) is cut into pieces:

* copy pieces: runs of whole GOPs of one clip that no change touches, cut out of the clip with
  the segment muxer (`-c copy`, cut exactly at keyframes), bit-identical to the clip;
* render pieces: the windows in between, each rendered by the same filter graph as the full
  composition (`graphs.compose_filter`, restricted to the window: clips are read from a
  frame-accurate seek, overlays and xfade offsets are shifted) and encoded with exactly the
  settings of the normalized clips (only the CRF is the composition's own).

Windows render in parallel (as many as the cores and the memory budget allow) while the copied
spans are cut and the music bed is encoded; everything is then joined by the concat demuxer with
`-c copy`. The result is accepted only if its sample index is sound (frame count, one frame
duration, closed GOPs, the same parameter sets everywhere) and it decodes end to end without an
error (`-xerror`). Anything that does not qualify raises `SmartUnavailable`; anything that goes
wrong raises `MediaError`; `compose_video` then falls back to the full re-encode.

The same machinery, with render pieces only, is the full re-encode for timelines too large for one
graph's memory (`render_segmented`): windows of about two clips, cut on whole output seconds.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from zencourt_pipeline.media import graphs
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.mp4index import VideoTrackIndex, read_video_index

# The decode check costs about this share of a full render per output frame (measured: decoding
# 720p H.264 is ~1/7 of decode + filter + x264 veryfast), and each rendered window about this many
# extra frames (x264 start-up and its first IDR). Used to decide whether smart rendering pays off.
CHECK_COST = 0.15
WINDOW_OVERHEAD_FRAMES = 12
WORTH_IT = 0.9  # smart must be estimated at most this share of a full render

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


class SmartUnavailable(Exception):
    """The inputs or the timeline do not allow smart rendering (the reason is the message)."""


@dataclass(frozen=True)
class Piece:
    start: int  # first output frame
    end: int  # one past the last output frame
    clip: int | None = None  # copied from this clip; None = rendered
    clip_start: int = 0  # the copied span's first frame in the clip

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class SmartPlan:
    pieces: list[Piece]
    total_frames: int

    @property
    def copied_frames(self) -> int:
        return sum(p.frames for p in self.pieces if p.clip is not None)

    @property
    def rendered_frames(self) -> int:
        return self.total_frames - self.copied_frames


@dataclass(frozen=True)
class SmartOutcome:
    plan: SmartPlan
    frame_count: int
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


# ---------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class _Timeline:
    starts: list[int]  # output frame where each clip starts
    durations: list[int]  # frames of each clip on the timeline
    transition: int
    total: int
    card_start: int | None


def _timeline(plan: graphs.ComposePlan) -> _Timeline:
    fps = plan.fps
    durations = [round(d * fps) for d in plan.durations]
    transition = round(plan.transition_s * fps)
    starts = [0]
    for d in durations[:-1]:
        starts.append(starts[-1] + d - transition)
    total = round(plan.total_s * fps)
    card_start = None
    if plan.end_card is not None and plan.end_card_s > 0 and durations:
        card_start = starts[-1] + durations[-1] - transition
    return _Timeline(starts, durations, transition, total, card_start)


def dirty_intervals(plan: graphs.ComposePlan) -> list[tuple[int, int]]:
    """[start, end) output frames whose pixels differ from the clip frame shown there."""
    fps = plan.fps
    tl = _timeline(plan)
    spans: list[tuple[int, int]] = []
    if plan.fade_in_s > 0:
        spans.append((0, math.ceil(plan.fade_in_s * fps - 1e-6)))
    if plan.fade_out_s > 0:
        spans.append((tl.total - math.ceil(plan.fade_out_s * fps - 1e-6), tl.total))
    for start in tl.starts[1:]:
        spans.append((start, start + tl.transition))
    if tl.card_start is not None:
        spans.append((tl.card_start, tl.total))
    for ov in plan.overlays:
        first = round(ov.start_s * fps)
        count = max(1, round(max(ov.end_s - ov.start_s, 1.0 / fps) * fps))
        lo = min(math.floor(ov.start_s * fps + 1e-6), first)
        hi = max(math.ceil(ov.end_s * fps - 1e-6), first + count)
        spans.append((lo, hi))
    clipped = sorted((max(a, 0), min(b, tl.total)) for a, b in spans)
    merged: list[tuple[int, int]] = []
    for a, b in clipped:
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def cut_barriers(plan: graphs.ComposePlan) -> list[tuple[int, int]]:
    """[start, end) output frames a render window must not cut through.

    Transitions, fades, the end card and faded overlays have frame-dependent state; a constant
    overlay (fade 0, e.g. a logo) looks the same in every frame and can be split between windows.
    """
    return dirty_intervals(replace(plan, overlays=[ov for ov in plan.overlays if ov.fade_s > 0]))


def _can_cut(frame: int, barriers: list[tuple[int, int]]) -> bool:
    return all(frame <= lo or frame >= hi for lo, hi in barriers)


def plan_pieces(plan: graphs.ComposePlan, gops: list[list[tuple[int, int]]]) -> SmartPlan:
    """Copy every whole GOP no change touches; render the windows in between.

    `gops[j]` lists clip j's GOPs as [start, end) frame ranges (from its keyframes).
    """
    tl = _timeline(plan)
    dirty = dirty_intervals(plan)

    def clean(a: int, b: int) -> bool:
        return all(b <= lo or a >= hi for lo, hi in dirty)

    copies: list[Piece] = []
    for j, clip_gops in enumerate(gops):
        run: Piece | None = None
        for ks, ke in clip_gops:
            out_a, out_b = tl.starts[j] + ks, tl.starts[j] + ke
            ok = 0 <= ks and ke <= tl.durations[j] and out_b <= tl.total and clean(out_a, out_b)
            if ok and run is not None and run.end == out_a:
                run = replace(run, end=out_b)
                continue
            if run is not None:
                copies.append(run)
                run = None
            if ok:
                run = Piece(out_a, out_b, clip=j, clip_start=ks)
        if run is not None:
            copies.append(run)
    copies.sort(key=lambda p: p.start)
    pieces: list[Piece] = []
    at = 0
    for piece in copies:
        if piece.start < at:  # overlapping clips outside a transition: impossible for a valid plan
            raise SmartUnavailable("copy spans overlap")
        if piece.start > at:
            pieces.append(Piece(at, piece.start))
        pieces.append(piece)
        at = piece.end
    if at < tl.total:
        pieces.append(Piece(at, tl.total))
    return SmartPlan(pieces=pieces, total_frames=tl.total)


def plan_segmented(plan: graphs.ComposePlan) -> SmartPlan:
    """Render-only pieces for a full re-encode in windows of few clips (bounded memory).

    Cuts fall on whole seconds of the output (so the keyframe grid is the one-pass render's) and
    outside every barrier, one per clip, as near the middle of the clip as possible; each window
    then holds the second half of one clip, a transition and the first half of the next.
    """
    fps = plan.fps
    tl = _timeline(plan)
    barriers = cut_barriers(plan)
    cuts: list[int] = []
    for j in range(len(tl.starts)):
        lo = tl.starts[j] + (tl.transition if j > 0 else 0)
        hi = tl.starts[j] + tl.durations[j]
        middle = (tl.starts[j] + hi) / 2
        candidates = [
            f
            for f in range(math.ceil(lo / fps) * fps, hi, fps)
            if 0 < f < tl.total and _can_cut(f, barriers) and (not cuts or f - cuts[-1] >= fps)
        ]
        if candidates:
            cuts.append(min(candidates, key=lambda f: abs(f - middle)))
    bounds = [0, *cuts, tl.total]
    pieces = [Piece(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return SmartPlan(pieces=pieces, total_frames=tl.total)


def window_clip_count(plan: graphs.ComposePlan, start: int, end: int) -> int:
    tl = _timeline(plan)
    return sum(
        1 for j in range(len(tl.starts)) if tl.starts[j] < end and tl.starts[j] + tl.durations[j] > start
    )


def window_plan(plan: graphs.ComposePlan, start: int, end: int) -> graphs.ComposePlan:
    """The composition of output frames [start, end) alone, as a plan of its own.

    The window must not cut through a transition, an overlay or a fade (render pieces never do:
    those spans are dirty, and pieces are bounded by clean copied GOPs).
    """
    fps = plan.fps
    tl = _timeline(plan)
    clips: list[Path] = []
    durations: list[float] = []
    seeks: list[float] = []
    kept: list[int] = []
    for j, clip in enumerate(plan.clips):
        a = max(0, start - tl.starts[j])
        b = min(tl.durations[j], end - tl.starts[j])
        if b > a:
            kept.append(j)
            clips.append(clip)
            durations.append(b / fps - a / fps)
            seeks.append(a / fps)
    card = tl.card_start is not None and end > tl.card_start
    t0, t1 = start / fps, end / fps
    overlays = []
    for ov in plan.overlays:
        if ov.end_s <= t0 or ov.start_s >= t1:
            continue
        inside = ov.start_s >= t0 - 1e-6 and ov.end_s <= t1 + 1e-6
        if not inside and ov.fade_s > 0:
            raise SmartUnavailable(f"window [{start}, {end}) cuts through a faded overlay")
        lo, hi = (ov.start_s, ov.end_s) if inside else (max(ov.start_s, t0), min(ov.end_s, t1))
        overlays.append(replace(ov, start_s=round(lo - t0, 6), end_s=round(hi - t0, 6)))
    window = replace(
        plan,
        clips=clips,
        durations=durations,
        overlays=overlays,
        end_card=plan.end_card if card else None,
        end_card_s=plan.end_card_s if card else 0.0,
        music=None,
        fade_in_s=plan.fade_in_s if start == 0 else 0.0,
        fade_out_s=plan.fade_out_s if end == tl.total else 0.0,
        rescale=[plan.rescale[j] for j in kept] if plan.rescale else [],
        clip_seeks=seeks,
    )
    if not clips or round(window.total_s * fps) != end - start:
        raise SmartUnavailable(f"window [{start}, {end}) does not map onto the clips")
    return window


# ---------------------------------------------------------------- qualification


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
        run_ffmpeg(args, timeout=120, code="COMPOSITION_FAILED")
        return read_video_index(out).avcc


def _qualify(plan: graphs.ComposePlan, indexes: list[VideoTrackIndex], preset: str) -> None:
    fps = plan.fps
    tl = _timeline(plan)
    first = indexes[0]
    for j, ix in enumerate(indexes):
        name = Path(plan.clips[j]).name
        problems = []
        if ix.codec != "avc1" or ix.avcc is None:
            problems.append(f"codec {ix.codec or 'unknown'}")
        if (ix.width, ix.height) != (plan.width, plan.height):
            problems.append(f"size {ix.width}x{ix.height}")
        if ix.timescale != graphs.VIDEO_TIMESCALE or ix.frame_delta != graphs.VIDEO_TIMESCALE // fps:
            problems.append(f"timing {ix.frame_delta}/{ix.timescale}")
        if not ix.closed_gops or not ix.edit_ok or not ix.keyframes or ix.keyframes[0] != 0:
            problems.append("open GOPs or an edit list")
        if ix.sample_count < tl.durations[j]:
            problems.append(f"{ix.sample_count} frames, {tl.durations[j]} needed")
        opts = ix.encoder_options
        if opts.get("stitchable") != "1" or opts.get("open_gop") != "0":
            problems.append("not encoded by normalize_clip (x264 stitchable, closed GOP)")
        if ix.avcc != first.avcc:
            problems.append("parameter sets differ from the first clip")
        if problems:
            raise SmartUnavailable(f"clip {j} ({name}): " + ", ".join(problems))
    if first.avcc != reference_avcc(plan.width, plan.height, fps, preset):
        raise SmartUnavailable(
            f"clips were encoded with other x264 settings than preset {preset!r} at this size"
        )


# ---------------------------------------------------------------- execution


def _check_piece(path: Path, frames: int, avcc: bytes | None, fps: int) -> bytes | None:
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
        raise MediaError("COMPOSITION_FAILED", f"piece {path.name}: " + ", ".join(problems))
    return ix.avcc


def decode_check(video: Path) -> int:
    """Decode `video` completely; MediaError on any decoder/demuxer error; returns the frame count."""
    proc = run_ffmpeg(graphs.decode_check_args(video), code="COMPOSITION_FAILED")
    errors = proc.stderr.decode(errors="replace").strip()
    if errors:
        raise MediaError("COMPOSITION_FAILED", f"{video.name} decodes with errors: {errors[:300]}")
    frames = [
        int(line.split("=", 1)[1])
        for line in proc.stdout.decode(errors="replace").splitlines()
        if line.startswith("frame=")
    ]
    return frames[-1] if frames else 0


def _windows_mb(plan: graphs.ComposePlan, smart: SmartPlan, decoder_threads: int | None) -> float:
    return max(
        (
            pass_memory_mb(
                plan.width,
                plan.height,
                window_clip_count(plan, p.start, p.end),
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
        raise MediaError("COMPOSITION_FAILED", f"smart/windowed render: {type(exc).__name__}: {exc}") from exc


def _run_pieces(
    plan: graphs.ComposePlan,
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
    """Render/copy the pieces, join them with the music bed into `dest`, validate the result."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    # One decoder thread per clip: a window decodes 1-3 clips and each keeps up with x264 alone.
    decoder_threads = 1
    per_window = _windows_mb(plan, smart, decoder_threads)
    cpus = os.cpu_count() or 1
    fit = max(1, int(memory_mb // per_window)) if per_window > 0 else cpus
    pool_size = max(1, min(workers or cpus, cpus, fit))
    pieces_dir = Path(tempfile.mkdtemp(prefix=".smart-", dir=work)).resolve()
    try:
        files: dict[int, Path] = {}
        jobs: list[tuple[int, list[str]]] = []
        for k, piece in enumerate(smart.pieces):
            if piece.clip is None:
                out = pieces_dir / f"render_{k:03d}.mp4"
                window = window_plan(plan, piece.start, piece.end)
                args = graphs.compose_args(
                    window, out, preset=preset, crf=crf, faststart=False, decoder_threads=decoder_threads
                )
                jobs.append((piece.frames, args))
                files[k] = out
        # One stream-copy split per clip, cut at every boundary of its copied spans.
        for j, clip in enumerate(plan.clips):
            spans = [(k, p) for k, p in enumerate(smart.pieces) if p.clip == j]
            if not spans or indexes is None:
                continue
            cuts = sorted({b for _, p in spans for b in (p.clip_start, p.clip_start + p.frames)} - {0})
            cuts = [c for c in cuts if c < indexes[j].sample_count]
            bounds = [0, *cuts]
            pattern = pieces_dir / f"clip{j:03d}_%03d.mp4"
            jobs.append((0, graphs.split_args(Path(clip), cuts, pattern)))
            for k, p in spans:
                files[k] = pieces_dir / f"clip{j:03d}_{bounds.index(p.clip_start):03d}.mp4"
        music = None
        if plan.music is not None:  # encoded while the windows render; joined by stream copy
            music = pieces_dir / "music.m4a"
            jobs.append((1, graphs.music_args(plan, music)))
        jobs.sort(key=lambda job: -job[0])
        with ThreadPoolExecutor(
            max_workers=max(1, min(pool_size, len(jobs))), thread_name_prefix="smart"
        ) as pool:
            futures = [pool.submit(run_ffmpeg, args, code="COMPOSITION_FAILED") for _, args in jobs]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()  # the ones not started yet
                raise
        seconds["pieces"] = time.perf_counter() - clock

        avcc = None
        for k, piece in enumerate(smart.pieces):
            avcc = _check_piece(files[k], piece.frames, avcc, plan.fps)
        if indexes is not None and avcc != indexes[0].avcc:
            raise MediaError(
                "COMPOSITION_FAILED", "re-encoded pieces have other parameter sets than the clips"
            )
        listing = pieces_dir / "pieces.ffconcat"
        listing.write_text(graphs.concat_list([files[k] for k in range(len(smart.pieces))]), encoding="utf-8")
        run_ffmpeg(graphs.join_args(listing, dest, music=music), code="COMPOSITION_FAILED")
        seconds["join"] = time.perf_counter() - clock - seconds["pieces"]

        joined = read_video_index(dest)
        if (
            joined.sample_count != smart.total_frames
            or not joined.closed_gops
            or joined.frame_delta != graphs.VIDEO_TIMESCALE // plan.fps
            or joined.avcc != avcc
        ):
            raise MediaError(
                "COMPOSITION_FAILED",
                f"joined video has {joined.sample_count} frames (wanted {smart.total_frames}) "
                "or broken timing/GOPs",
            )
        frames = decode_check(dest) if check == "decode" else joined.sample_count
        seconds["check"] = time.perf_counter() - clock - seconds["pieces"] - seconds["join"]
        if frames != smart.total_frames:
            raise MediaError(
                "COMPOSITION_FAILED",
                f"smart render decodes to {frames} frames instead of {smart.total_frames}",
            )
    finally:
        shutil.rmtree(pieces_dir, ignore_errors=True)
    return SmartOutcome(plan=smart, frame_count=frames, seconds=seconds)


def _indexes(plan: graphs.ComposePlan) -> list[VideoTrackIndex]:
    cache: dict[Path, VideoTrackIndex] = {}
    indexes = []
    for clip in plan.clips:
        key = Path(clip).resolve()
        if key not in cache:
            try:
                cache[key] = read_video_index(key)
            except (MediaError, OSError, ValueError, IndexError) as exc:  # struct.error is a ValueError
                raise SmartUnavailable(f"{Path(clip).name}: {exc}") from exc
        indexes.append(cache[key])
    return indexes


def estimated_cost(smart: SmartPlan, *, check: str = "decode") -> float:
    """Estimated cost of executing `smart`, as a share of one full render of the timeline."""
    windows = sum(1 for p in smart.pieces if p.clip is None)
    frames = smart.rendered_frames + WINDOW_OVERHEAD_FRAMES * windows
    if check == "decode":
        frames += CHECK_COST * smart.total_frames
    return frames / max(smart.total_frames, 1)


def render_smart(
    plan: graphs.ComposePlan,
    dest: Path,
    *,
    work: Path,
    preset: str = "veryfast",
    crf: int = 23,
    check: str = "decode",
    require_gain: bool = True,
    memory_mb: float = MEMORY_BUDGET_MB,
    workers: int | None = None,
) -> SmartOutcome:
    """Smart-render `plan` to `dest` (MP4). SmartUnavailable / MediaError when it cannot.

    check: "decode" decodes the whole result (`-xerror`), "index" only checks its sample index
    (frame count, closed GOPs, timing, parameter sets). `require_gain`: SmartUnavailable unless
    the estimated cost is below `WORTH_IT` of a full render.
    """
    if any(plan.rescale) or plan.clip_seeks or not plan.clips:
        raise SmartUnavailable("clips need rescaling")
    indexes = _indexes(plan)
    _qualify(plan, indexes, preset)
    smart = plan_pieces(plan, [ix.gops() for ix in indexes])
    if smart.copied_frames == 0:
        raise SmartUnavailable("no whole GOP of any clip is left unchanged by the composition")
    cost = estimated_cost(smart, check=check)
    if require_gain and cost > WORTH_IT:
        raise SmartUnavailable(
            f"only {smart.copied_frames} of {smart.total_frames} frames can be stream-copied "
            f"(estimated {cost:.0%} of a full render)"
        )
    return _execute(
        plan, smart, indexes, dest, work=work, preset=preset, crf=crf, check=check,
        memory_mb=memory_mb, workers=workers,
    )  # fmt: skip


def render_segmented(
    plan: graphs.ComposePlan,
    dest: Path,
    *,
    work: Path,
    preset: str = "veryfast",
    crf: int = 23,
    check: str = "decode",
    memory_mb: float = MEMORY_BUDGET_MB,
    workers: int | None = None,
) -> SmartOutcome:
    """Full re-encode of `plan` in windows of about two clips each, joined by stream copy.

    Same pixels and encoder settings as the one-pass graph, but never more than a few decoders
    and one or two x264 instances alive at once: bounded memory for long, large timelines.
    """
    if not plan.clips:
        raise SmartUnavailable("no clips")
    smart = plan_segmented(plan)
    if len(smart.pieces) < 2:
        raise SmartUnavailable("the timeline has no place to cut between windows")
    return _execute(
        plan, smart, None, dest, work=work, preset=preset, crf=crf, check=check,
        memory_mb=memory_mb, workers=workers,
    )  # fmt: skip
