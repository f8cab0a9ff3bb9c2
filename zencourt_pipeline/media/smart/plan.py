"""Smart rendering, the planning half (pure: frame arithmetic, no ffmpeg).

The timeline (in output frames) is cut into pieces: copy pieces, runs of whole GOPs of one clip
that no change of the composition touches (stream-copied), and render pieces, the windows in
between (re-encoded by the composition graph restricted to the window). `smart_render` executes
a plan; `clip_keyframes` tells normalization where to put keyframes so that the copy pieces can
start and end exactly where the changes do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.model import Clip, ImageElement, TextElement, Timeline

# The decode check costs about this share of a full render per output frame (measured: decoding
# 720p H.264 is ~1/7 of decode + filter + x264 veryfast), and each rendered window about this many
# extra frames (x264 start-up and its first IDR). Used to decide whether smart rendering pays off.
CHECK_COST = 0.15
WINDOW_OVERHEAD_FRAMES = 12
WORTH_IT = 0.9  # smart must be estimated at most this share of a full render


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


# ---------------------------------------------------------------- planning (pure)


def _merged(spans: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    clipped = sorted((max(a, 0), min(b, total)) for a, b in spans)
    merged: list[tuple[int, int]] = []
    for a, b in clipped:
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _changes(tl: Timeline, *, constant_overlays: bool) -> list[tuple[int, int]]:
    return _merged(change_spans(tl, constant_overlays=constant_overlays), tl.total_frames)


def change_spans(tl: Timeline, *, constant_overlays: bool = False) -> list[tuple[int, int]]:
    """Each change of the composition on its own, [start, end) output frames (not merged: a cut
    where one change ends and the next begins cuts through neither): transitions, fades, the end
    card, and faded overlays (every overlay with `constant_overlays`)."""
    total = tl.total_frames
    spans: list[tuple[int, int]] = []
    if tl.fade_in_frames > 0:
        spans.append((0, tl.fade_in_frames))
    if tl.fade_out_frames > 0:
        spans.append((total - tl.fade_out_frames, total))
    starts = tl.clip_starts
    for k in range(1, len(starts)):
        spans.append((starts[k], starts[k] + tl.clips[k - 1].transition.frames))  # type: ignore[union-attr]
    if tl.card_start is not None:
        spans.append((tl.card_start, total))
    for element in [*tl.texts, *tl.images]:
        if constant_overlays or element.fade_frames > 0:
            spans.append((element.start_frame, element.end_frame))
    return spans


def dirty_intervals(tl: Timeline) -> list[tuple[int, int]]:
    """[start, end) output frames whose pixels differ from the clip frame shown there."""
    return _changes(tl, constant_overlays=True)


def clip_keyframes(tl: Timeline) -> list[list[int]]:
    """Per clip, the frames (counted from the clip's in point) where a keyframe lets a copy piece
    start or end exactly at the edge of a change: the edges of the dirty intervals that fall
    inside the clip. Normalization forces keyframes there (besides its one-second grid), so that
    smart rendering re-encodes no frame the composition does not change."""
    edges = sorted({edge for span in dirty_intervals(tl) for edge in span})
    return [
        [edge - start + clip.in_frame for edge in edges if 0 < edge - start < clip.frames]
        for start, clip in zip(tl.clip_starts, tl.clips, strict=True)
    ]


def cut_barriers(tl: Timeline) -> list[tuple[int, int]]:
    """[start, end) output frames a render window must not cut through.

    Transitions, fades, the end card and faded overlays have frame-dependent state; a constant
    overlay (fade 0, e.g. a logo) looks the same in every frame and can be split between windows.
    """
    return _changes(tl, constant_overlays=False)


def _can_cut(frame: int, barriers: list[tuple[int, int]]) -> bool:
    return all(frame <= lo or frame >= hi for lo, hi in barriers)


def plan_pieces(tl: Timeline, gops: list[list[tuple[int, int]]]) -> SmartPlan:
    """Copy every whole GOP no change touches; render the windows in between.

    `gops[j]` lists clip j's GOPs as [start, end) frame ranges of its file (from its keyframes).
    """
    starts, total = tl.clip_starts, tl.total_frames
    dirty = dirty_intervals(tl)

    def clean(a: int, b: int) -> bool:
        return all(b <= lo or a >= hi for lo, hi in dirty)

    copies: list[Piece] = []
    for j, clip_gops in enumerate(gops):
        clip = tl.clips[j]
        run: Piece | None = None
        for ks, ke in clip_gops:
            out_a, out_b = starts[j] + ks - clip.in_frame, starts[j] + ke - clip.in_frame
            ok = clip.in_frame <= ks and ke <= clip.out_frame and out_b <= total and clean(out_a, out_b)
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
        if piece.start < at:  # overlapping clips outside a transition: impossible for a valid timeline
            raise SmartUnavailable("copy spans overlap")
        if piece.start > at:
            pieces.append(Piece(at, piece.start))
        pieces.append(piece)
        at = piece.end
    if at < total:
        pieces.append(Piece(at, total))
    return SmartPlan(pieces=pieces, total_frames=total)


def plan_segmented(tl: Timeline) -> SmartPlan:
    """Render-only pieces for a full re-encode in windows of few clips (bounded memory).

    Cuts fall on whole seconds of the output (so the keyframe grid is the one-pass render's) and
    outside every barrier, one per clip, as near the middle of the clip as possible; each window
    then holds the second half of one clip, a transition and the first half of the next.
    """
    fps, starts, total = tl.fps, tl.clip_starts, tl.total_frames
    barriers = cut_barriers(tl)
    cuts: list[int] = []
    for j, clip in enumerate(tl.clips):
        lo = starts[j] + (tl.clips[j - 1].transition.frames if j > 0 else 0)  # type: ignore[union-attr]
        hi = starts[j] + clip.frames
        middle = (starts[j] + hi) / 2
        candidates = [
            f
            for f in range(math.ceil(lo / fps) * fps, hi, fps)
            if 0 < f < total and _can_cut(f, barriers) and (not cuts or f - cuts[-1] >= fps)
        ]
        if candidates:
            cuts.append(min(candidates, key=lambda f: abs(f - middle)))
    bounds = [0, *cuts, total]
    pieces = [Piece(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return SmartPlan(pieces=pieces, total_frames=total)


def window_clip_count(tl: Timeline, start: int, end: int) -> int:
    """How many clips the window [start, end) reads."""
    return sum(1 for s, clip in zip(tl.clip_starts, tl.clips, strict=True) if s < end and s + clip.frames > start)


def window_plan(
    tl: Timeline,
    assets: RenderAssets,
    start: int,
    end: int,
    sources: Mapping[tuple[int, int], Path] | None = None,
) -> tuple[Timeline, RenderAssets]:
    """The composition of output frames [start, end) alone, as a timeline of its own (and its assets).

    The window must not cut through a transition, an overlay or a fade (render pieces never do:
    those spans are dirty, and pieces are bounded by clean copied GOPs). `sources` maps
    (clip index, frame) to a file holding that clip from that frame on (a stream-copied cut at a
    keyframe): a window reads it from its start instead of seeking into the clip, which would
    decode the frames from the keyframe before the seek point for nothing.
    """
    clips, kept = _window_clips(tl, start, end, sources or {})
    card = tl.card_start is not None and end > tl.card_start
    if not clips:
        raise SmartUnavailable(f"window [{start}, {end}) does not map onto the clips")
    if not card:
        clips[-1] = clips[-1].model_copy(update={"transition": None})
    shown = _window_overlays(tl, start, end)
    try:
        window = tl.model_copy(
            update={
                "clips": clips, "audio": [], "end_card": tl.end_card if card else None,
                "texts": [e for _, e in shown if isinstance(e, TextElement)],
                "images": [e for _, e in shown if isinstance(e, ImageElement)],
                "fade_in_frames": tl.fade_in_frames if start == 0 else 0,
                "fade_out_frames": tl.fade_out_frames if end == tl.total_frames else 0,
            }
        )  # fmt: skip
        window = Timeline.model_validate(window.model_dump())  # re-checked as a timeline of its own
    except ValueError as exc:
        raise SmartUnavailable(f"window [{start}, {end}) is not a valid timeline: {exc}") from exc
    if window.total_frames != end - start:
        raise SmartUnavailable(f"window [{start}, {end}) does not map onto the clips")
    window_assets = RenderAssets(
        layers=tuple(assets.layers[k] for k, _ in shown),
        end_card=assets.end_card if card else None,
        rescale=tuple(assets.rescale[j] for j in kept) if assets.rescale else (),
    )
    return window, window_assets


def _window_clips(
    tl: Timeline, start: int, end: int, sources: Mapping[tuple[int, int], Path]
) -> tuple[list[Clip], list[int]]:
    """The clips under output frames [start, end), each trimmed to them (read from a stream-copied
    cut in `sources` when there is one at its first frame), and the indexes of the clips kept."""
    clips: list[Clip] = []
    kept: list[int] = []
    for j, (s, clip) in enumerate(zip(tl.clip_starts, tl.clips, strict=True)):
        a = clip.in_frame + max(0, start - s)
        b = clip.in_frame + min(clip.frames, end - s)
        if b > a:
            kept.append(j)
            source = sources.get((j, a)) if a > 0 else None
            if source is not None:
                clips.append(clip.model_copy(update={"source": str(source), "in_frame": 0, "out_frame": b - a}))
            else:
                clips.append(clip.model_copy(update={"in_frame": a, "out_frame": b}))
    return clips, kept


def _window_overlays(tl: Timeline, start: int, end: int) -> list[tuple[int, TextElement | ImageElement]]:
    """The texts and images shown in [start, end), with their index among them, cut to the window
    and moved to its frames; SmartUnavailable when the window cuts through a faded one."""
    shown: list[tuple[int, TextElement | ImageElement]] = []
    for k, element in enumerate([*tl.texts, *tl.images]):
        if element.end_frame <= start or element.start_frame >= end:
            continue
        inside = element.start_frame >= start and element.end_frame <= end
        if not inside and element.fade_frames > 0:
            raise SmartUnavailable(f"window [{start}, {end}) cuts through a faded overlay")
        lo, hi = max(element.start_frame, start), min(element.end_frame, end)
        shown.append((k, element.model_copy(update={"start_frame": lo - start, "duration_frames": hi - lo})))
    return shown


def estimated_cost(smart: SmartPlan, *, check: str = "keyframes") -> float:
    """Estimated cost of executing `smart`, as a share of one full render of the timeline."""
    windows = sum(1 for p in smart.pieces if p.clip is None)
    frames = smart.rendered_frames + WINDOW_OVERHEAD_FRAMES * windows
    if check == "decode":
        frames += CHECK_COST * smart.total_frames
    return frames / max(smart.total_frames, 1)
