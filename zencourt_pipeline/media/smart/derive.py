"""Smart rendering of a variant: a timeline that differs from one already rendered only in a few
windows is that render with the windows re-encoded and every other GOP stream-copied from it.

What it is for: the MLS-unbranded cut (`media.branding`). The template draws the branding in
bounded windows (the logo bug at the start, the end card with the logo and the contact line), so
the unbranded timeline has the branded one's clips, transitions, fades, texts and length, and
differs only there. Its render is then the branded file cut at its keyframes (it is a final
composition: closed GOPs of at most one second, x264 `stitchable`, the parameter sets every encode
of this size has) with the differing windows rendered from the clips by the composition graph
(`graphs.compose_args` of `plan.window_plan`, the same encoder settings), joined by stream copy;
the audio is the branded file's (stream copy) when both cuts have the same audio, none when the
unbranded cut drops a music bed that identifies the agent.

Planning is pure (`variant_spans`, `plan_variant`): the windows are where the two timelines' texts,
images or end card differ, grown until they cut through no transition, fade or faded overlay of
the variant (`plan.change_spans`) and start and end on the source's keyframes. `render_variant`
executes the plan and checks the result as `render_smart` does (pieces' frames and parameter
sets, the joined index, every keyframe decodes); anything that does not qualify raises
`SmartUnavailable`, anything that fails `MediaError` (the caller renders the variant in full).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.mp4index import read_video_index
from zencourt_pipeline.media.smart import splicing
from zencourt_pipeline.media.smart.checks import check_joined, check_piece, reference_avcc
from zencourt_pipeline.media.smart.plan import (
    Piece,
    SmartPlan,
    SmartUnavailable,
    _merged,
    change_spans,
    window_plan,
)
from zencourt_pipeline.media.smart.render import (
    DECODER_THREADS,
    MEMORY_BUDGET_MB,
    SmartOutcome,
    _pool,
    _run_all,
)
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.model import Timeline

_SAME = ("width", "height", "fps", "clips", "fade_in_frames", "fade_out_frames")


def variant_spans(source: Timeline, variant: Timeline) -> list[tuple[int, int]]:
    """[start, end) output frames where `variant` may look other than `source`: the spans of the
    texts and images one has and the other has not, and the end card when the cards differ.
    SmartUnavailable when the two differ in anything else (clips, size, fades, length)."""
    for name in _SAME:
        if getattr(source, name) != getattr(variant, name):
            raise SmartUnavailable(f"the variant's {name} differ from the rendered timeline's")
    total = variant.total_frames
    if source.total_frames != total or (source.end_card is None) != (variant.end_card is None):
        raise SmartUnavailable("the variant is not as long as the rendered timeline")
    spans = []
    for mine, theirs in ((source.texts, variant.texts), (source.images, variant.images)):
        spans += [(e.start_frame, e.end_frame) for e in mine if e not in theirs]
        spans += [(e.start_frame, e.end_frame) for e in theirs if e not in mine]
    if source.end_card != variant.end_card and variant.card_start is not None:
        spans.append((variant.card_start, total))
    return _merged(spans, total)


def _grown(span: tuple[int, int], bounds: list[tuple[int, int]]) -> tuple[int, int]:
    a, b = span
    for lo, hi in bounds:
        if lo < b and a < hi:
            a, b = min(a, lo), max(b, hi)
    return a, b


def plan_variant(variant: Timeline, spans: list[tuple[int, int]], gops: list[tuple[int, int]]) -> SmartPlan:
    """Render the `spans` (grown to whole GOPs of the source, `gops` as [start, end) frames, and
    past every barrier of `variant`) and copy the source's frames everywhere else (`Piece.clip` 0:
    the source, at the same frame)."""
    total = variant.total_frames
    barriers = change_spans(variant)  # each on its own: a window may end where one ends and the next begins
    windows = _merged(spans, total)
    while True:
        grown = _merged([_grown(_grown(w, barriers), gops) for w in windows], total)
        if grown == windows:
            break
        windows = grown
    pieces: list[Piece] = []
    at = 0
    for a, b in windows:
        if a > at:
            pieces.append(Piece(at, a, clip=0, clip_start=at))
        pieces.append(Piece(a, b))
        at = b
    if at < total:
        pieces.append(Piece(at, total, clip=0, clip_start=at))
    return SmartPlan(pieces=pieces, total_frames=total)


def _audio(source: Timeline, variant: Timeline) -> bool:
    """Whether the variant takes the source's audio (True) or has none (False)."""
    if variant.audio == source.audio:
        return bool(variant.audio)
    if not variant.audio:
        return False
    raise SmartUnavailable("the variant's audio differs from the rendered timeline's")


def render_variant(
    source: Path, source_tl: Timeline, variant: Timeline, assets: RenderAssets, dest: Path, *,
    work: Path, preset: str = "veryfast", crf: int = 23, check: str = "keyframes",
) -> SmartOutcome:
    """Render `variant` (with its rendered `assets`) into `dest` from `source`, the final render of
    `source_tl`: the differing windows re-encoded, the rest stream-copied (see the module)."""
    spans = variant_spans(source_tl, variant)
    with_audio = _audio(source_tl, variant)
    ix = read_video_index(source)
    fps = variant.fps
    if ix.sample_count != variant.total_frames or not ix.closed_gops or not ix.edit_ok or not ix.keyframes:
        raise SmartUnavailable(f"{source.name} is not a closed-GOP render of {variant.total_frames} frames")
    if ix.timescale != graphs.VIDEO_TIMESCALE or ix.frame_delta != graphs.VIDEO_TIMESCALE // fps:
        raise SmartUnavailable(f"{source.name} has timing {ix.frame_delta}/{ix.timescale}")
    if ix.avcc is None or ix.avcc != reference_avcc(variant.width, variant.height, fps, preset):
        raise SmartUnavailable(f"{source.name} was encoded with other x264 settings than preset {preset!r}")
    smart = plan_variant(variant, spans, ix.gops())
    if smart.copied_frames == 0:
        raise SmartUnavailable("the variant differs from the rendered timeline in every GOP")
    try:
        return _execute(source, variant, assets, smart, dest, work=work, preset=preset, crf=crf, check=check, audio=with_audio)
    except (OSError, ValueError, IndexError) as exc:  # struct.error is a ValueError
        raise MediaError(ErrorCode.COMPOSITION_FAILED, f"variant render: {type(exc).__name__}: {exc}") from exc


def _execute(
    source: Path, tl: Timeline, assets: RenderAssets, smart: SmartPlan, dest: Path, *,
    work: Path, preset: str, crf: int, check: str, audio: bool,
) -> SmartOutcome:
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    pieces_dir = Path(tempfile.mkdtemp(prefix=".variant-", dir=work)).resolve()
    try:
        bounds = sorted({b for p in smart.pieces for b in (p.start, p.end)} - {0, smart.total_frames})
        segment = {first: pieces_dir / f"src_{n:03d}.mp4" for n, first in enumerate([0, *bounds])}
        # as many windows side by side as the cores and the memory budget allow (`render._pool`)
        workers, threads = _pool(tl, smart, MEMORY_BUDGET_MB, None)
        commands = [splicing.split_args(source, bounds, pieces_dir / "src_%03d.mp4")]
        files: list[Path] = []
        for k, piece in enumerate(smart.pieces):
            if piece.clip is not None:
                files.append(segment[piece.start])
                continue
            files.append(pieces_dir / f"render_{k:03d}.mp4")
            window, window_assets = window_plan(tl, assets, piece.start, piece.end)
            commands.append(graphs.compose_args(
                window, window_assets, files[-1], preset=preset, crf=crf, faststart=False,
                decoder_threads=DECODER_THREADS, encoder_threads=threads,
            ))  # fmt: skip
        _run_all(commands, workers)
        seconds["pieces"] = time.perf_counter() - clock
        avcc = None
        for path, piece in zip(files, smart.pieces, strict=True):
            avcc = check_piece(path, piece.frames, avcc, tl.fps)
        listing = pieces_dir / "pieces.ffconcat"
        listing.write_text(splicing.concat_list(files, [p.frames for p in smart.pieces], tl.fps), encoding="utf-8")
        run_ffmpeg(splicing.join_args(listing, dest, music=source if audio else None), code=ErrorCode.COMPOSITION_FAILED)
        seconds["join"] = time.perf_counter() - clock - seconds["pieces"]
        frames = check_joined(dest, smart.total_frames, tl.fps, avcc, check)
        seconds["check"] = time.perf_counter() - clock - seconds["pieces"] - seconds["join"]
    finally:
        shutil.rmtree(pieces_dir, ignore_errors=True)
    return SmartOutcome(plan=smart, frame_count=frames, seconds=seconds)
