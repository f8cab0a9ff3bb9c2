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

from zencourt_pipeline.media import graphs

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


@dataclass(frozen=True)
class FrameTimeline:
    starts: list[int]  # output frame where each clip starts
    durations: list[int]  # frames of each clip on the timeline
    transition: int
    total: int
    card_start: int | None


def frame_timeline(plan: graphs.ComposePlan) -> FrameTimeline:
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
    return FrameTimeline(starts, durations, transition, total, card_start)


def dirty_intervals(plan: graphs.ComposePlan) -> list[tuple[int, int]]:
    """[start, end) output frames whose pixels differ from the clip frame shown there."""
    fps = plan.fps
    tl = frame_timeline(plan)
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


def clip_keyframes(plan: graphs.ComposePlan) -> list[list[int]]:
    """Per clip, the frames (counted from the clip's first frame) where a keyframe lets a copy
    piece start or end exactly at the edge of a change: the edges of the dirty intervals that fall
    inside the clip. Normalization forces keyframes there (besides its one-second grid), so that
    smart rendering re-encodes no frame the composition does not change."""
    tl = frame_timeline(plan)
    edges = sorted({edge for span in dirty_intervals(plan) for edge in span})
    return [
        [edge - start for edge in edges if 0 < edge - start < duration]
        for start, duration in zip(tl.starts, tl.durations, strict=True)
    ]


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
    tl = frame_timeline(plan)
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
    tl = frame_timeline(plan)
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
    tl = frame_timeline(plan)
    return sum(
        1 for j in range(len(tl.starts)) if tl.starts[j] < end and tl.starts[j] + tl.durations[j] > start
    )


def window_plan(
    plan: graphs.ComposePlan,
    start: int,
    end: int,
    sources: Mapping[tuple[int, int], Path] | None = None,
) -> graphs.ComposePlan:
    """The composition of output frames [start, end) alone, as a plan of its own.

    The window must not cut through a transition, an overlay or a fade (render pieces never do:
    those spans are dirty, and pieces are bounded by clean copied GOPs). `sources` maps
    (clip index, frame) to a file holding that clip from that frame on (a stream-copied cut at a
    keyframe): a window reads it from its start instead of seeking into the clip, which would
    decode the frames from the keyframe before the seek point for nothing.
    """
    fps = plan.fps
    tl = frame_timeline(plan)
    clips: list[Path] = []
    durations: list[float] = []
    seeks: list[float] = []
    kept: list[int] = []
    for j, clip in enumerate(plan.clips):
        a = max(0, start - tl.starts[j])
        b = min(tl.durations[j], end - tl.starts[j])
        if b > a:
            kept.append(j)
            source = (sources or {}).get((j, a)) if a > 0 else None
            clips.append(source if source is not None else clip)
            durations.append(b / fps - a / fps)
            seeks.append(0.0 if source is not None else a / fps)
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


def estimated_cost(smart: SmartPlan, *, check: str = "keyframes") -> float:
    """Estimated cost of executing `smart`, as a share of one full render of the timeline."""
    windows = sum(1 for p in smart.pieces if p.clip is None)
    frames = smart.rendered_frames + WINDOW_OVERHEAD_FRAMES * windows
    if check == "decode":
        frames += CHECK_COST * smart.total_frames
    return frames / max(smart.total_frames, 1)
