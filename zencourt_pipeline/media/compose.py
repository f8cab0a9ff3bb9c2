"""Compose normalized clips into the final listing video in ONE ffmpeg pass.

Clips are chained with `xfade`; the title, room captions and end card are Pillow-rendered PNGs
overlaid/xfaded in the same filter graph; the template's music bed is looped, trimmed to the
timeline and faded. The graph itself is built in `graphs.py`.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs, loudness, overlays
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import VideoInfo, probe, run_ffmpeg
from zencourt_pipeline.media.mp4index import read_video_index
from zencourt_pipeline.media.normalize import temp_path_for
from zencourt_pipeline.media.smart import plan as smart_plan
from zencourt_pipeline.media.smart import render as smart_render
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.thumbnails import extract_thumbnail

log = logging.getLogger(__name__)

FPS = 30
DURATION_TOLERANCE_S = 0.1
STRATEGIES = ("auto", "smart", "full")
_MIN_CLIP_S = 0.5
_MIN_CAPTION_S = 1.0


@dataclass(frozen=True)
class ClipInput:
    path: Path
    duration_s: float
    caption: str | None = None


@dataclass(frozen=True)
class CompositionResult:
    path: Path
    duration_s: float
    planned_duration_s: float
    info: VideoInfo
    thumbnail_path: Path | None
    transitions: int
    strategy: str = "full"  # what rendered it: "smart" (copied + re-encoded pieces) or "full" (one graph)
    strategy_note: str | None = None  # why smart rendering was not used, when it was considered
    copied_frames: int = 0  # frames stream-copied from the clips (smart only)
    pieces: int = 1  # separately encoded/copied pieces joined by stream copy (1 = one ffmpeg graph)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # pieces/join/check (smart, windowed)


def _quantize(seconds: float, fps: int = FPS) -> float:
    """Seconds rounded to whole frames (what trim/xfade actually produce)."""
    return round(seconds * fps) / fps


def _segment_durations(clip_durations: list[float], template: Template, fps: int = FPS) -> list[float]:
    return [_quantize(d, fps) for d in clip_durations]


def effective_transition(clip_durations: list[float], template: Template, fps: int = FPS) -> float:
    """The template's transition length, shortened (to whole frames) if a clip is too short for it.

    Every clip must cover its incoming and outgoing transitions: end clips need d > T, middle clips
    (and the last clip when an end card follows) need d > 2 T.
    """
    durations = _segment_durations(clip_durations, template, fps)
    wanted = template.transition_seconds
    segments = len(durations) + (1 if template.end_card_seconds > 0 and durations else 0)
    if segments < 2:
        return wanted
    limits = []
    for i, d in enumerate(durations):
        sides = (1 if i > 0 else 0) + (1 if i < segments - 1 else 0)
        limits.append(0.9 * d / sides)
    frames = math.floor(min(wanted, *limits) * fps + 1e-6)
    return max(frames, 1) / fps if frames < round(wanted * fps) else wanted


def planned_duration(clip_durations: list[float], template: Template) -> float:
    """sum(clips) - (n - 1) * transition + end card (clip lengths rounded to whole frames at 30 fps)."""
    durations = _segment_durations(clip_durations, template)
    if not durations:
        return 0.0
    transition = effective_transition(clip_durations, template)
    total = sum(durations) - (len(durations) - 1) * transition
    if template.end_card_seconds > 0:
        total += _quantize(template.end_card_seconds)
    return round(total, 6)


def _validate(clips: list[ClipInput], width: int, height: int, *, files: bool = True) -> None:
    if not clips:
        raise MediaError(ErrorCode.INVALID_INPUT, "cannot compose a video from zero clips")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise MediaError(ErrorCode.INVALID_INPUT, f"output size must be positive and even, got {width}x{height}")
    for i, clip in enumerate(clips):
        if files and not Path(clip.path).is_file():
            raise MediaError(ErrorCode.INVALID_INPUT, f"clip {i} not found: {clip.path}")
        if not clip.duration_s >= _MIN_CLIP_S:
            raise MediaError(
                ErrorCode.INVALID_INPUT, f"clip {i} is {clip.duration_s} s; clips must be >= {_MIN_CLIP_S} s"
            )


def _timed(image: overlays.OverlayImage, start: float, end: float, fade: float) -> graphs.TimedOverlay:
    return graphs.TimedOverlay(
        image=image.path, x=image.x, y=image.y, start_s=round(start, 6), end_s=round(end, 6), fade_s=fade
    )


def _plan_overlays(
    clips: list[ClipInput],
    durations: list[float],
    transition: float,
    *,
    title: str | None,
    template: Template,
    width: int,
    height: int,
    total: float,
    has_end_card: bool,
    work: Path,
) -> tuple[list[graphs.TimedOverlay], float]:
    """Title and caption overlays with their time windows; also returns when the title ends (0 = none)."""
    style = template.text_style()
    fade = template.overlay_fade_seconds
    timed: list[graphs.TimedOverlay] = []
    title_end = 0.0
    if title and title.strip() and template.title_seconds > 0:
        title_end = min(template.title_seconds, durations[0] if len(clips) > 1 else total)
        card = overlays.render_title_card(
            work / "title.png", width=width, height=height, title=title, style=style
        )
        timed.append(_timed(card, 0.0, title_end, fade))
    if template.caption_seconds > 0:
        starts = graphs.timeline_starts(durations, transition)
        last = len(clips) - 1
        for i, clip in enumerate(clips):
            if not clip.caption or not clip.caption.strip():
                continue
            visible_end = starts[i] + durations[i] - (transition / 2 if i < last or has_end_card else 0.0)
            start = starts[i] + (transition / 2 if i > 0 else 0.0)
            if i == 0 and title_end > 0 and visible_end - title_end >= _MIN_CAPTION_S:
                start = title_end  # first room name after the title, when there is room for it
            end = min(start + template.caption_seconds, visible_end)
            if end - start < min(_MIN_CAPTION_S, template.caption_seconds):
                continue
            image = overlays.render_caption(
                work / f"caption_{i:03d}.png", width=width, height=height, text=clip.caption, style=style
            )
            timed.append(_timed(image, start, end, fade))
    if template.logo_path is not None:
        logo = overlays.render_logo(
            work / "logo.png", template.logo_path, width=width, height=height,
            position=template.logo_position, width_fraction=template.logo_width, opacity=template.logo_opacity,
        )  # fmt: skip
        timed.append(_timed(logo, 0.0, total, 0.0))  # constant, on top of everything
    return timed, title_end


def _thumbnail_time(durations: list[float], transition: float, title_end: float, total: float) -> float:
    """The middle of the first clip, moved past the title when the title covers it."""
    first_visible_end = durations[0] - (transition if len(durations) > 1 else 0.0)
    at = durations[0] / 2
    if title_end > 0 and at < title_end + 0.3 and title_end + 0.3 < first_visible_end:
        at = title_end + 0.3
    return max(0.0, min(at, total - 0.1))


def _display_size(path: Path) -> tuple[int, int]:
    """Width x height of the decoded picture, from the MP4 index (no ffmpeg run) when it can tell."""
    try:
        ix = read_video_index(path)
        if ix.width > 0 and ix.height > 0 and not ix.rotated and ix.codec in ("avc1", "avc3"):
            return ix.width, ix.height
    except (MediaError, OSError, ValueError, IndexError):
        pass
    info = probe(path)
    return (0, 0) if info.rotation else (info.width, info.height)  # rotated: always rescale


def plan_composition(
    clips: list[ClipInput],
    *,
    width: int,
    height: int,
    title: str | None,
    template: Template,
    work: Path,
    inspect_files: bool = True,
) -> tuple[graphs.ComposePlan, float]:
    """The composition plan (title/caption/logo/end-card PNGs rendered into `work`) and when the
    title ends (0 = no title). `compose_video` renders it; the bench reuses it for its references.
    `inspect_files=False` plans the timeline alone (the clip files need not exist yet)."""
    clips = list(clips)
    _validate(clips, width, height, files=inspect_files)
    rescale = [inspect_files and _display_size(Path(c.path)) != (width, height) for c in clips]
    durations = _segment_durations([c.duration_s for c in clips], template)
    transition = effective_transition([c.duration_s for c in clips], template)
    end_card_s = _quantize(template.end_card_seconds) if template.end_card_seconds > 0 else 0.0
    planned = planned_duration([c.duration_s for c in clips], template)
    timed, title_end = _plan_overlays(
        clips, durations, transition, title=title, template=template, width=width, height=height,
        total=planned, has_end_card=end_card_s > 0, work=work,
    )  # fmt: skip
    end_card = None
    if end_card_s > 0:
        end_card = overlays.render_end_card(
            work / "end_card.png", width=width, height=height, title=title,
            subtitle=template.end_card_text, style=template.text_style(),
        )  # fmt: skip
    plan = graphs.ComposePlan(
        clips=[Path(c.path) for c in clips],
        durations=durations,
        width=width,
        height=height,
        fps=FPS,
        transition=template.transition,
        transition_s=transition,
        overlays=timed,
        end_card=end_card,
        end_card_s=end_card_s,
        music=template.music_path,
        music_volume=template.music_volume,
        fade_in_s=min(template.fade_in_seconds, planned / 4),
        fade_out_s=min(template.fade_out_seconds, planned / 4),
        rescale=rescale,
    )
    if plan.music is not None and inspect_files:  # first loudness pass over the bed alone (two-pass R128)
        plan = replace(plan, loudnorm=loudness.measure_bed(graphs.music_input(plan), graphs.music_chain(plan, 0)))
    return plan, title_end


def clip_keyframes(
    clips: list[ClipInput], *, width: int, height: int, title: str | None, template: Template
) -> list[list[int]]:
    """Per clip, the frames where normalization should force a keyframe (besides its one-second
    grid) so that smart rendering can stream-copy every frame this composition leaves unchanged.

    `clips` are the clips as they will be composed (only their order, durations and captions
    matter; the files need not exist). A later composition with another template or other clips
    still works; it just copies fewer frames.
    """
    with tempfile.TemporaryDirectory(prefix="zc-keyframes-") as tmp:
        plan, _ = plan_composition(
            clips, width=width, height=height, title=title, template=template, work=Path(tmp), inspect_files=False
        )  # fmt: skip
    return smart_plan.clip_keyframes(plan)


def compose_video(
    clips: list[ClipInput],
    dest: Path,
    *,
    width: int,
    height: int,
    title: str | None,
    template: Template,
    thumbnail_dest: Path | None = None,
    work_dir: Path | None = None,
    preset: str = "veryfast",
    crf: int = 23,
    strategy: str = "auto",
) -> CompositionResult:
    """Compose `clips` (normalized: width x height, 30 fps, yuv420p) into an H.264 MP4 at `dest`.

    strategy: "full" re-encodes the whole timeline, in one ffmpeg graph (or, when one graph would
    hold too many large decoders for the memory budget, in windows of ~2 clips joined by stream
    copy); "smart" re-encodes only the changed spans and stream-copies the rest (`smart_render`;
    raises if the clips do not allow it); "auto" uses smart when the clips qualify and it is
    estimated to pay off, and falls back to full otherwise or when the smart output fails its checks.
    `CompositionResult.strategy` / `strategy_note` tell what was used and why.
    """
    if strategy not in STRATEGIES:
        raise MediaError(ErrorCode.INVALID_INPUT, f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    clips = list(clips)
    dest = Path(dest)
    _validate(clips, width, height)
    planned = planned_duration([c.duration_s for c in clips], template)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest, ".mp4")
    with _work_dir(dest, work_dir) as work:
        try:
            plan, title_end = plan_composition(
                clips, width=width, height=height, title=title, template=template, work=work
            )
            check = partial(_check_output, width=width, height=height, planned=planned, music=plan.music is not None)
            rendered = _render(plan, tmp, work=work, strategy=strategy, preset=preset, crf=crf, check=check)
            os.replace(tmp, dest)
            info = replace(rendered.info, size_bytes=dest.stat().st_size)
            thumb = None
            if thumbnail_dest is not None:
                at = _thumbnail_time(plan.durations, plan.transition_s, title_end, planned)
                thumb = extract_thumbnail(dest, Path(thumbnail_dest), at_s=at)
        finally:
            tmp.unlink(missing_ok=True)
    duration = info.frame_count / FPS if info.frame_count else info.duration
    return CompositionResult(
        path=dest,
        duration_s=round(duration, 6),
        planned_duration_s=planned,
        info=info,
        thumbnail_path=thumb,
        transitions=len(clips) - 1 + (1 if plan.end_card is not None else 0),
        strategy=rendered.used,
        strategy_note="; ".join(rendered.notes) or None,
        copied_frames=rendered.copied,
        pieces=rendered.pieces,
        stage_seconds=rendered.stages,
    )


@contextmanager
def _work_dir(dest: Path, work_dir: Path | None) -> Iterator[Path]:
    """The given work directory, or a temporary one beside `dest` (removed afterwards)."""
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix=".compose-", dir=dest.parent) as tmp:
        yield Path(tmp)


@dataclass
class _Rendered:
    """What rendered the timeline into the temporary file, and its checked VideoInfo."""

    info: VideoInfo
    used: str = "full"
    copied: int = 0
    pieces: int = 1
    stages: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _render(
    plan: graphs.ComposePlan, tmp: Path, *, work: Path, strategy: str, preset: str, crf: int,
    check: Callable[[VideoInfo], None],
) -> _Rendered:
    """Smart rendering when asked and it qualifies; else windows of ~2 clips when one graph would
    hold too many large decoders for the memory budget; else one graph. Each output is checked."""
    notes: list[str] = []
    attempts: list[tuple[str, Callable[[], smart_render.SmartOutcome]]] = []
    if strategy != "full":
        attempts.append(("smart", lambda: smart_render.render_smart(
            plan, tmp, work=work, preset=preset, crf=crf, require_gain=strategy == "auto")))
    if smart_render.pass_memory_mb(plan.width, plan.height, len(plan.clips)) > smart_render.MEMORY_BUDGET_MB:
        attempts.append(("segmented", lambda: smart_render.render_segmented(plan, tmp, work=work, preset=preset, crf=crf)))
    for used, attempt in attempts:
        try:
            outcome = attempt()
            info = replace(probe(tmp), frame_count=outcome.frame_count)
            check(info)
        except (smart_plan.SmartUnavailable, MediaError) as exc:
            if strategy == "smart":
                raise MediaError(ErrorCode.COMPOSITION_FAILED, f"smart rendering failed: {exc}") from exc
            notes.append(f"{used}: {exc}")
            quiet = isinstance(exc, smart_plan.SmartUnavailable)
            log.log(logging.INFO if quiet else logging.WARNING, "%s rendering not used: %s", used, exc)
            tmp.unlink(missing_ok=True)
            continue
        copied = outcome.plan.copied_frames if used == "smart" else 0
        return _Rendered(info, "smart" if used == "smart" else "full", copied, len(outcome.plan.pieces), outcome.seconds, notes)
    run_ffmpeg(graphs.compose_args(plan, tmp, preset=preset, crf=crf), code=ErrorCode.COMPOSITION_FAILED)
    info = probe(tmp, count_frames=True)
    check(info)
    return _Rendered(info, notes=notes)


def _check_output(info: VideoInfo, *, width: int, height: int, planned: float, music: bool) -> None:
    problems = []
    if info.codec != "h264" or (info.width, info.height) != (width, height):
        problems.append(f"{info.codec} {info.width}x{info.height}")
    if abs(info.fps - FPS) > 0.01:
        problems.append(f"{info.fps} fps")
    duration = info.frame_count / FPS if info.frame_count else info.duration
    if abs(duration - planned) > DURATION_TOLERANCE_S:
        problems.append(f"duration {duration:.3f} s instead of {planned:.3f} s")
    if info.has_audio != music:
        problems.append("an audio stream" if info.has_audio else "no audio stream")
    if problems:
        raise MediaError(ErrorCode.COMPOSITION_FAILED, "composed video has unexpected " + ", ".join(problems))
