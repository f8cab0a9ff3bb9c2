"""Compose normalized clips into the final listing video.

The template and clips become a `Timeline` (`timeline/build.py`, pure data in frames); its title,
captions, logo and end card are rendered as Pillow PNGs in a separate step (`timeline/assets.py`);
then the timeline is rendered: smart (copy what nothing changes), in windows, or in ONE ffmpeg
graph (built in `graphs.py`: clips chained with `xfade`, overlays; the audio in `mix.py`: the music
bed looped, trimmed, faded and ducked under the narration, the mix normalized to the loudness target).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import VideoInfo, probe, run_ffmpeg
from zencourt_pipeline.media.mp4index import read_video_index
from zencourt_pipeline.media.normalize import temp_path_for
from zencourt_pipeline.media.smart import derive as smart_derive
from zencourt_pipeline.media.smart import plan as smart_plan
from zencourt_pipeline.media.smart import render as smart_render
from zencourt_pipeline.media.soundtrack import Soundtrack, measure_mix
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.thumbnails import extract_thumbnail
from zencourt_pipeline.media.timeline import assets as assets_step
from zencourt_pipeline.media.timeline import build
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.build import ClipInput
from zencourt_pipeline.media.timeline.model import Timeline
from zencourt_pipeline.media.timeline.narration import Narration

__all__ = [
    "ClipInput", "CompositionResult", "clip_keyframes", "compose_video", "plan_composition", "render_timeline",
    "render_variant",
]  # fmt: skip

log = logging.getLogger(__name__)

FPS = build.FPS
DURATION_TOLERANCE_S = 0.1
STRATEGIES = ("auto", "smart", "full")


@dataclass(frozen=True)
class CompositionResult:
    path: Path
    duration_s: float
    planned_duration_s: float
    info: VideoInfo
    thumbnail_path: Path | None
    transitions: int
    timeline: Timeline  # what was rendered (stored next to the video: `timeline.to_json()`)
    strategy: str = "full"  # what rendered it: "smart" (copied + re-encoded pieces), "full" (one graph) or
    # "variant" (another output's render with the windows where they differ re-encoded: `render_variant`)
    strategy_note: str | None = None  # why smart rendering was not used, when it was considered
    copied_frames: int = 0  # frames stream-copied from the clips (smart only)
    pieces: int = 1  # separately encoded/copied pieces joined by stream copy (1 = one ffmpeg graph)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # pieces/join/check (smart, windowed)


def _thumbnail_frame(timeline: Timeline) -> int:
    """The middle of the first clip, moved past the title when the title covers it."""
    fps, first = timeline.fps, timeline.clips[0]
    first_visible_end = first.frames - (first.transition.frames if len(timeline.clips) > 1 else 0)  # type: ignore[union-attr]
    at = first.frames // 2
    title_end = build.title_end_frame(timeline)
    after_title = title_end + round(0.3 * fps)
    if title_end > 0 and at < after_title < first_visible_end:
        at = after_title
    return max(0, min(at, timeline.total_frames - round(0.1 * fps)))


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


def prepare(timeline: Timeline, work: Path, soundtrack: Soundtrack | None = None) -> RenderAssets:
    """Everything the filter graph reads besides `timeline`: the overlay PNGs rendered into `work`,
    which clips need rescaling, and the audio: the given `soundtrack` (its mix already measured and
    encoded, muxed as it is), else the mix's loudness measurement (first R128 pass)."""
    for i, clip in enumerate(timeline.clips):
        if not Path(clip.source).is_file():
            raise MediaError(ErrorCode.INVALID_INPUT, f"clip {i} not found: {clip.source}")
    assets = assets_step.render_assets(timeline, work)
    rescale = tuple(_display_size(Path(c.source)) != (timeline.width, timeline.height) for c in timeline.clips)
    if soundtrack is not None and timeline.audio:
        if not soundtrack.fits(timeline):
            raise MediaError(ErrorCode.COMPOSITION_FAILED, "the soundtrack given is another mix than the timeline's")
        return assets.with_inputs(rescale=rescale, loudnorm=soundtrack.loudnorm, soundtrack=soundtrack.path)
    loudnorm = None
    if timeline.audio:  # the whole mix (music ducked under the narration) is measured, then normalized
        loudnorm = measure_mix(timeline)
    return assets.with_inputs(rescale=rescale, loudnorm=loudnorm)


def plan_composition(
    clips: list[ClipInput], *, width: int, height: int, title: str | None, template: Template, work: Path,
    facts: ListingFacts | None = None, branded: bool = True,
) -> tuple[Timeline, RenderAssets]:
    """The timeline of `clips` with `template` and its rendered assets (PNGs in `work`); the bench
    reuses it for its references."""
    timeline = build.build_timeline(
        clips, width=width, height=height, title=title, template=template, facts=facts, branded=branded
    )
    return timeline, prepare(timeline, work)


def clip_keyframes(
    clips: list[ClipInput], *, width: int, height: int, title: str | None, template: Template,
    facts: ListingFacts | None = None,
) -> list[list[int]]:
    """Per clip, the frames where normalization should force a keyframe (besides its one-second
    grid) so that smart rendering can stream-copy every frame this composition leaves unchanged.

    `clips` are the clips as they will be composed (only their order, durations and captions
    matter; the files need not exist). A later composition with another template or other clips
    still works; it just copies fewer frames.
    """
    timeline = build.build_timeline(clips, width=width, height=height, title=title, template=template, facts=facts)
    return smart_plan.clip_keyframes(timeline)


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
    facts: ListingFacts | None = None,
    branded: bool = True,
    narration: Narration | None = None,
) -> CompositionResult:
    """Compose `clips` (normalized, 30 fps, yuv420p; clips of another size than width x height are
    cover-cropped around their focus point and scaled) into an H.264 MP4 at `dest`: `build_timeline`
    with `template`, `facts`, `branded` (False: the MLS-unbranded cut) and `narration`, then
    `render_timeline` (see there for `strategy`)."""
    timeline = build.build_timeline(
        clips, width=width, height=height, title=title, template=template, facts=facts, branded=branded,
        narration=narration,
    )  # fmt: skip
    return render_timeline(
        timeline, dest, thumbnail_dest=thumbnail_dest, work_dir=work_dir, preset=preset, crf=crf, strategy=strategy
    )


def render_timeline(
    timeline: Timeline,
    dest: Path,
    *,
    thumbnail_dest: Path | None = None,
    work_dir: Path | None = None,
    preset: str = "veryfast",
    crf: int = 23,
    strategy: str = "auto",
    soundtrack: Soundtrack | None = None,
) -> CompositionResult:
    """Render `timeline` (built by `build_timeline`, or read back with `Timeline.from_json`) into an
    H.264 MP4 at `dest`; its audio the `soundtrack` when given (the mix made once for every output
    that has it: `media.soundtrack`), else mixed, measured and encoded for this render.

    strategy: "full" re-encodes the whole timeline, in one ffmpeg graph (or, when one graph would
    hold too many large decoders for the memory budget, in windows of ~2 clips joined by stream
    copy); "smart" re-encodes only the changed spans and stream-copies the rest (`smart_render`;
    raises if the clips do not allow it); "auto" uses smart when the clips qualify and it is
    estimated to pay off, and falls back to full otherwise or when the smart output fails its checks.
    `CompositionResult.strategy` / `strategy_note` tell what was used and why.
    """
    if strategy not in STRATEGIES:
        raise MediaError(ErrorCode.INVALID_INPUT, f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    dest = Path(dest)
    planned = timeline.duration_s
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest, ".mp4")
    with _work_dir(dest, work_dir) as work:
        try:
            assets = prepare(timeline, work, soundtrack)
            check = partial(
                _check_output, width=timeline.width, height=timeline.height, fps=timeline.fps, planned=planned,
                audio=bool(timeline.audio),
            )  # fmt: skip
            rendered = _render(timeline, assets, tmp, work=work, strategy=strategy, preset=preset, crf=crf, check=check)
            os.replace(tmp, dest)
            info = replace(rendered.info, size_bytes=dest.stat().st_size)
            thumb = None
            if thumbnail_dest is not None:
                at = timeline.seconds(_thumbnail_frame(timeline))
                thumb = extract_thumbnail(dest, Path(thumbnail_dest), at_s=at)
        finally:
            tmp.unlink(missing_ok=True)
    duration = info.frame_count / timeline.fps if info.frame_count else info.duration
    return CompositionResult(
        path=dest,
        duration_s=round(duration, 6),
        planned_duration_s=planned,
        info=info,
        thumbnail_path=thumb,
        transitions=sum(1 for c in timeline.clips if c.transition is not None),
        timeline=timeline,
        strategy=rendered.used,
        strategy_note="; ".join(rendered.notes) or None,
        copied_frames=rendered.copied,
        pieces=rendered.pieces,
        stage_seconds=rendered.stages,
    )


def render_variant(
    timeline: Timeline,
    source: CompositionResult,
    dest: Path,
    *,
    thumbnail_dest: Path | None = None,
    work_dir: Path | None = None,
    preset: str = "veryfast",
    crf: int = 23,
    soundtrack: Soundtrack | None = None,
) -> CompositionResult:
    """Render `timeline`, a variant of the rendered `source` (the MLS-unbranded cut of a branded
    output), from `source`'s file: only the windows where they differ are re-encoded
    (`smart.derive`). When the variant does not qualify or its render fails a check, it is rendered
    in full (`render_timeline`, with the `soundtrack`); `strategy_note` says why."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest, ".mp4")
    with _work_dir(dest, work_dir) as work:
        try:
            assets = assets_step.render_assets(timeline, work)
            rescale = tuple(_display_size(Path(c.source)) != (timeline.width, timeline.height) for c in timeline.clips)
            outcome = smart_derive.render_variant(
                source.path, source.timeline, timeline, assets.with_inputs(rescale=rescale), tmp, work=work,
                preset=preset, crf=crf,
            )  # fmt: skip
            info = replace(probe(tmp), frame_count=outcome.frame_count)
            _check_output(
                info, width=timeline.width, height=timeline.height, fps=timeline.fps, planned=timeline.duration_s,
                audio=bool(timeline.audio),
            )  # fmt: skip
            os.replace(tmp, dest)
        except (smart_plan.SmartUnavailable, MediaError) as exc:
            log.log(logging.INFO if isinstance(exc, smart_plan.SmartUnavailable) else logging.WARNING,
                    "variant rendering not used: %s", exc)  # fmt: skip
            result = render_timeline(
                timeline, dest, thumbnail_dest=thumbnail_dest, work_dir=work, preset=preset, crf=crf,
                soundtrack=soundtrack,
            )
            return replace(result, strategy_note="; ".join(filter(None, [f"variant: {exc}", result.strategy_note])))
        finally:
            tmp.unlink(missing_ok=True)
    info = replace(info, size_bytes=dest.stat().st_size)
    thumb = None
    if thumbnail_dest is not None:
        thumb = extract_thumbnail(dest, Path(thumbnail_dest), at_s=timeline.seconds(_thumbnail_frame(timeline)))
    return CompositionResult(
        path=dest, duration_s=round(info.frame_count / timeline.fps, 6), planned_duration_s=timeline.duration_s,
        info=info, thumbnail_path=thumb, transitions=sum(1 for c in timeline.clips if c.transition is not None),
        timeline=timeline, strategy="variant", copied_frames=outcome.plan.copied_frames,
        pieces=len(outcome.plan.pieces), stage_seconds=outcome.seconds,
    )  # fmt: skip


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
    tl: Timeline, assets: RenderAssets, tmp: Path, *, work: Path, strategy: str, preset: str, crf: int,
    check: Callable[[VideoInfo], None],
) -> _Rendered:
    """Smart rendering when asked and it qualifies; else windows of ~2 clips when one graph would
    hold too many large decoders for the memory budget; else one graph. Each output is checked."""
    notes: list[str] = []
    attempts: list[tuple[str, Callable[[], smart_render.SmartOutcome]]] = []
    if strategy != "full":
        attempts.append(("smart", lambda: smart_render.render_smart(
            tl, assets, tmp, work=work, preset=preset, crf=crf, require_gain=strategy == "auto")))
    if smart_render.pass_memory_mb(tl.width, tl.height, len(tl.clips)) > smart_render.MEMORY_BUDGET_MB:
        attempts.append(("segmented", lambda: smart_render.render_segmented(tl, assets, tmp, work=work, preset=preset, crf=crf)))
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
    run_ffmpeg(graphs.compose_args(tl, assets, tmp, preset=preset, crf=crf), code=ErrorCode.COMPOSITION_FAILED)
    info = probe(tmp, count_frames=True)
    check(info)
    return _Rendered(info, notes=notes)


def _check_output(info: VideoInfo, *, width: int, height: int, fps: int, planned: float, audio: bool) -> None:
    problems = []
    if info.codec != "h264" or (info.width, info.height) != (width, height):
        problems.append(f"{info.codec} {info.width}x{info.height}")
    if abs(info.fps - fps) > 0.01:
        problems.append(f"{info.fps} fps")
    duration = info.frame_count / fps if info.frame_count else info.duration
    if abs(duration - planned) > DURATION_TOLERANCE_S:
        problems.append(f"duration {duration:.3f} s instead of {planned:.3f} s")
    if info.has_audio != audio:
        problems.append("an audio stream" if info.has_audio else "no audio stream")
    if problems:
        raise MediaError(ErrorCode.COMPOSITION_FAILED, "composed video has unexpected " + ", ".join(problems))
