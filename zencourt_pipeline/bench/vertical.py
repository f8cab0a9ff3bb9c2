"""The bench's long vertical video (`make bench`: `compose_1080x1920_60s_*`, `compose_full_*`): a
60 s 1080x1920 listing composed with the default strategy (its peak memory must not grow with the
length), then its first third re-encoded in full (windows of ~2 clips).

Its clips are a few distinct normalized clips, each used several times, with the keyframes of every
place it appears (as the pipeline normalizes a clip for the composition that uses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.bench.inputs import ROOMS, TITLE
from zencourt_pipeline.bench.report import emit, note, timed
from zencourt_pipeline.media import compose
from zencourt_pipeline.media.compose import ClipInput, compose_video
from zencourt_pipeline.media.normalize import normalize_many
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.timeline.build import build_timeline


@dataclass(frozen=True)
class VerticalConfig:
    """The long vertical video: its size and its clips (how many, how long, how many distinct sources)."""

    size: tuple[int, int] = (1080, 1920)
    clips: int = 12  # eleven of clip_s and one 0.5 s shorter: 60 s with 0.5 s xfades
    clip_s: float = 5.5
    distinct: int = 3


FULL_VERTICAL = VerticalConfig()
QUICK_VERTICAL = VerticalConfig(size=(180, 320), clips=3, clip_s=4.0, distinct=2)


def vertical_figures(cfg: VerticalConfig, work: Path, sources: list[Path], template: Template) -> None:
    """The vertical clips normalized, then the 60 s video and a third of it in full, timed."""
    _vertical_compose(cfg, work, _vertical_clips(cfg, work, sources, template), template)


def _vertical_clips(cfg: VerticalConfig, work: Path, sources: list[Path], template: Template) -> list[ClipInput]:
    """The 60 s vertical timeline's clips, normalized (a few distinct clips, each used often)."""
    vw, vh = cfg.size
    note(f"normalizing {cfg.distinct} vertical clips")
    vpaths = [work / f"vclip_{i}.mp4" for i in range(cfg.distinct)]
    vclips = [
        ClipInput(
            vpaths[i % cfg.distinct],
            cfg.clip_s - (0.5 if i == cfg.clips - 1 else 0.0),
            ROOMS[i % len(ROOMS)],
        )
        for i in range(cfg.clips)
    ]
    # Each distinct clip appears at several places: keyframes for all of them.
    vkeyframes: list[set[int]] = [set() for _ in vpaths]
    for i, cuts in enumerate(compose.clip_keyframes(vclips, width=vw, height=vh, title=TITLE, template=template)):
        vkeyframes[i % cfg.distinct].update(cuts)
    vitems = [
        (sources[i], vpaths[i], cfg.clip_s, sorted(vkeyframes[i])) for i in range(cfg.distinct)
    ]
    voutcomes = normalize_many(vitems, width=vw, height=vh)
    if any(isinstance(o, Exception) for o in voutcomes):
        raise SystemExit(f"vertical normalize failed: {voutcomes}")
    return vclips


def _vertical_compose(cfg: VerticalConfig, work: Path, vclips: list[ClipInput], template: Template) -> None:
    """The 60 s vertical video (default strategy: its peak memory), then a third of it re-encoded in full."""
    vw, vh = cfg.size
    vlabel = f"{vw}x{vh}"
    total = build_timeline(vclips, width=vw, height=vh, title=TITLE, template=template).duration_s
    note(f"composing the {total:.0f} s vertical video (default strategy)")
    t = timed(
        lambda: compose_video(
            vclips,
            work / "vertical.mp4",
            width=vw,
            height=vh,
            title=TITLE,
            template=template,
            thumbnail_dest=work / "vertical.jpg",
        )  # fmt: skip
    )
    emit("compose_1080x1920_60s_s", t.wall)
    emit("compose_1080x1920_60s_peak_rss_mb", t.peak_mb)
    emit("compose_1080x1920_60s_smart", int(t.result.strategy == "smart"))
    emit("compose_1080x1920_60s_pieces", t.result.pieces)
    emit("compose_1080x1920_60s_duration_s", t.result.duration_s)
    # The full re-encode fallback on the first third of it (windows of ~2 clips, so its peak does
    # not grow with the length; a third keeps the bench short).
    part = vclips[: max(2, cfg.clips // 3)]
    seconds = build_timeline(part, width=vw, height=vh, title=TITLE, template=template).duration_s
    note(f"composing {seconds:.1f} s of it with strategy=full")
    t = timed(
        lambda: compose_video(
            part,
            work / "vertical_full.mp4",
            width=vw,
            height=vh,
            title=TITLE,
            template=template,
            strategy="full",
        )
    )
    label = f"compose_full_{vlabel}_{seconds:g}s".replace(".", "_")
    emit(f"{label}_s", t.wall)
    emit(f"{label}_peak_rss_mb", t.peak_mb)
    emit(f"{label}_pieces", t.result.pieces)
