"""A template, the clips and the title -> the `Timeline` (pure: no file is read or written).

The template's lengths are in seconds; here they become whole frames at the output fps once, and
everything downstream (overlay rendering, the filter graph, smart rendering, the normalize keyframe
plan) reads the frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.branding import Branding
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.merge import (
    Missing,
    TextProblem,
    branding_values,
    clip_values,
    fact_values,
    merge,
    request_field,
    uses_branding,
)
from zencourt_pipeline.media.overlays import TextDoesNotFit
from zencourt_pipeline.media.timeline import brand
from zencourt_pipeline.media.timeline.assets import place_text
from zencourt_pipeline.media.timeline.model import (
    AudioKind,
    AudioTrack,
    Clip,
    GainPoint,
    TextElement,
    TextRole,
    TextStyle,
    Timeline,
    Transition,
)
from zencourt_pipeline.media.timeline.narration import Narration, duck_points, hold_frames, narration_track
from zencourt_pipeline.media.transitions import TransitionKind

if TYPE_CHECKING:
    from zencourt_pipeline.media.templates import Template, TemplateText

FPS = 30
MIN_CLIP_S = 0.5
_MIN_CAPTION_S = 1.0
_MIN_MUSIC_FADE_OUT_S = 0.5
_SILENT_DB = -120.0


@dataclass(frozen=True)
class ClipInput:
    """A clip to compose: its file, how long it runs on the timeline, the caption over it (merge
    fields allowed; the room name when None), its room name and its transition into the next clip
    (None: the template's)."""

    path: Path
    duration_s: float
    caption: str | None = None
    room: str | None = None
    transition: TransitionKind | None = None
    focus: tuple[float, float] | None = None  # what a reframing crop keeps in view (0..1 x, y); None: the centre


def frames(seconds: float, fps: int = FPS) -> int:
    """Seconds as whole frames (what trim and xfade produce)."""
    return round(seconds * fps)


def transition_frames(clip_frames: Sequence[int], template: Template, fps: int = FPS) -> int:
    """The template's transition length in frames, shortened if a clip is too short for it.

    Every clip must cover its incoming and outgoing transitions: end clips need d > T, middle clips
    (and the last clip when an end card follows) need d > 2 T; each transition may use at most 90%
    of the clip's share.
    """
    wanted = frames(template.transition_seconds, fps)
    segments = len(clip_frames) + (1 if template.end_card_seconds > 0 and clip_frames else 0)
    if segments < 2:
        return wanted
    limits = []
    for i, d in enumerate(clip_frames):
        sides = (1 if i > 0 else 0) + (1 if i < segments - 1 else 0)
        limits.append(math.floor(0.9 * d / sides + 1e-6))
    return max(1, min(wanted, *limits))


def validate_clips(clips: Sequence[ClipInput], width: int, height: int) -> None:
    """MediaError(INVALID_INPUT) unless there are clips, each long enough, and an even output size."""
    if not clips:
        raise MediaError(ErrorCode.INVALID_INPUT, "cannot compose a video from zero clips")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise MediaError(ErrorCode.INVALID_INPUT, f"output size must be positive and even, got {width}x{height}")
    for i, clip in enumerate(clips):
        if not clip.duration_s >= MIN_CLIP_S:
            raise MediaError(
                ErrorCode.INVALID_INPUT, f"clip {i} is {clip.duration_s} s; clips must be >= {MIN_CLIP_S} s"
            )


def _text_style(template: Template, size: int) -> TextStyle:
    return TextStyle(
        font_color=template.font_color, background_color=template.background_color,
        background_opacity=template.background_opacity, font_size=size,
        subtitle_font_size=template.subtitle_font_size,
    )  # fmt: skip


def _gain_db(volume: float) -> float:
    return max(_SILENT_DB, 20 * math.log10(volume)) if volume > 0 else _SILENT_DB


@dataclass(frozen=True)
class _Layout:
    """Where the clips sit in frames: each clip's length and start, the transition, the end card, the total."""

    lengths: list[int]
    starts: list[int]
    transition: int
    card: int
    total: int

    @property
    def card_start(self) -> int | None:
        """Where the end card's transition starts (None: no card)."""
        return self.total - self.card - self.transition if self.card else None


def build_timeline(
    clips: Sequence[ClipInput],
    *,
    width: int,
    height: int,
    title: str | None,
    template: Template,
    fps: int = FPS,
    facts: ListingFacts | None = None,
    branded: bool = True,
    narration: Narration | None = None,
    branding: Branding | None = None,
) -> Timeline:
    """The timeline of `clips` composed with `template`: crossfaded clips, the title over the first
    clip, a caption over each clip that has one, the template's texts with their merge fields filled
    from `facts`, the logo, the end card, fades, the music bed and the `narration` (the music ducked
    under it; the last clip held when it is longer than the clips: `timeline.narration`).
    MediaError(INVALID_INPUT) naming the text for an unknown or missing field, or text that does not
    fit the frame; MediaError(NARRATION_TOO_LONG) for a narration the clips cannot hold.

    `branded=False` is the MLS-unbranded cut: no logo, no agent card (the template's `outro` text)
    and no text that merges the agent's name (`merge.BRANDING_FIELDS`; a caption of the job's own
    that does falls back to the room name) and no narration that identifies the agent.

    `branding` (`media.branding`, the workspace's profile with the batch's override) is applied by
    the template in bounded windows (`timeline.brand`): the logo bug, an end card naming the agent
    and the contact line over it. The unbranded cut gets an end card of the same length without
    them, and no music when the template's music identifies the agent."""
    clips = list(clips)
    validate_clips(clips, width, height)
    if (card_s := brand.card_seconds(template, branding)) != template.end_card_seconds:
        template = template.model_copy(update={"end_card_seconds": card_s})  # the card a profile adds
    title, values = _merge_values(template, title, facts, branding, branded=branded)
    voice = narration if narration is not None and narration.in_cut(branded) else None
    layout = _layout(clips, template, voice, fps)
    windows = brand.BrandWindows(
        bug_frames=frames(template.logo_seconds, fps), card_start=layout.card_start,
        card_shown=None if layout.card_start is None else layout.card_start + layout.transition, total=layout.total,
    )  # fmt: skip
    texts = _placed_texts(
        clips, layout, windows, title=title, template=template, values=values, branding=branding, branded=branded,
        size=(width, height), fps=fps,
    )  # fmt: skip
    images = brand.logo_elements(template, branding, windows, frames(template.overlay_fade_seconds, fps)) if branded else []
    fade_in = min(frames(template.fade_in_seconds, fps), layout.total // 4)
    fade_out = min(frames(template.fade_out_seconds, fps), layout.total // 4)
    card = None
    if layout.card:
        style = _text_style(template, template.title_font_size)
        card = brand.end_card(template, branding, title=title, style=style, branded=branded)
        card = card.model_copy(update={"duration_frames": layout.card})  # type: ignore[union-attr]
    return Timeline(
        width=width, height=height, fps=fps, clips=_clip_track(clips, layout, template), end_card=card, texts=texts,
        images=images, audio=_audio(template, voice, layout.total, (fade_in, fade_out), branded=branded, fps=fps),
        fade_in_frames=fade_in, fade_out_frames=fade_out,
    )  # fmt: skip


def _merge_values(
    template: Template, title: str | None, facts: ListingFacts | None, branding: Branding | None, *, branded: bool
) -> tuple[str | None, dict[str, str]]:
    """The template's title merged, and the cut's merge values: the facts, the request's title, the branding."""
    facts = facts or ListingFacts()
    if branding is not None and branding.agent_name and not facts.agent_name:
        facts = facts.model_copy(update={"agent_name": branding.agent_name})
    if not branded:
        facts = facts.model_copy(update={"agent_name": None})
        title = None if uses_branding(title) else title
    extra = branding_values(branding) if branded else {}
    values = {**fact_values(facts), **extra}
    values = {**fact_values(facts, merge(title, values, where="the title", field="title") if title else None), **extra}
    return merge(template.title_text, values, where="the template's title", missing=Missing.OMIT), values


def _layout(clips: list[ClipInput], template: Template, voice: Narration | None, fps: int) -> _Layout:
    """The clips in frames, crossfaded, the last one held for a `voice` longer than them, then the end card."""
    lengths = [frames(c.duration_s, fps) for c in clips]
    t = transition_frames(lengths, template, fps)
    card = frames(template.end_card_seconds, fps) if template.end_card_seconds > 0 else 0
    lengths[-1] += hold_frames(sum(lengths) - t * (len(lengths) - 1) + card, voice, fps)
    starts = [0]
    for n in lengths[:-1]:
        starts.append(starts[-1] + n - t)
    return _Layout(lengths=lengths, starts=starts, transition=t, card=card, total=starts[-1] + lengths[-1] + card)


def _clip_track(clips: list[ClipInput], layout: _Layout, template: Template) -> list[Clip]:
    """The clip track: each clip trimmed to its length, with its transition into the next clip or the card."""
    last = len(clips) - 1
    return [
        Clip(
            source=str(c.path), in_frame=0, out_frame=n,
            transition=Transition(kind=c.transition or template.transition_after(i), frames=layout.transition)
            if i < last or layout.card else None,
            **({"focus_x": c.focus[0], "focus_y": c.focus[1]} if c.focus else {}),
        )
        for i, (c, n) in enumerate(zip(clips, layout.lengths, strict=True))
    ]  # fmt: skip


def _placed_texts(
    clips: list[ClipInput], layout: _Layout, windows: brand.BrandWindows, *, title: str | None, template: Template,
    values: dict[str, str], branding: Branding | None, branded: bool, size: tuple[int, int], fps: int,
) -> list[TextElement]:
    """Every text of the cut, each checked to fit the frame: the title, the captions, the template's
    texts (no agent card in the unbranded cut) and the branding's contact line."""
    placed = _texts(clips, layout, title=title, template=template, fps=fps, values=values, branded=branded)
    for spec in template.texts:
        if not branded and spec.role == TextRole.OUTRO:
            continue  # the agent card
        if element := _template_text(spec, values, layout.total, template, fps):
            placed.append((element, f"the template's {spec.role} text ({spec.text})", request_field(spec.text)))
    if branded and (contact := brand.contact_element(template, branding, windows)):
        placed.append((contact, "the branding's contact line", "branding"))
    for element, where, field in placed:
        _check_fits(element, *size, where=where, field=field)
    return [element for element, _, _ in placed]


def _audio(
    template: Template, voice: Narration | None, total: int, fades: tuple[int, int], *, branded: bool, fps: int
) -> list[AudioTrack]:
    """The music bed, ducked under the `voice` (none in the unbranded cut when it identifies the
    agent, its fade-out at least `_MIN_MUSIC_FADE_OUT_S`), then the narration track."""
    fade_in, fade_out = fades
    audio = []
    if template.music_path is not None and (branded or not template.music_identifies_agent):
        base = _gain_db(template.music_volume)
        audio.append(
            AudioTrack(
                kind=AudioKind.MUSIC, source=str(template.music_path), loop=True,
                gain=duck_points(base, voice.speech, total, fps) if voice else [GainPoint(frame=0, db=base)],
                fade_in_frames=fade_in, fade_out_frames=min(max(fade_out, frames(_MIN_MUSIC_FADE_OUT_S, fps)), total),
            )  # fmt: skip
        )
    if voice is not None:
        audio.append(narration_track(voice, total, fps))
    return audio


def _texts(
    clips: list[ClipInput], layout: _Layout, *,
    title: str | None, template: Template, fps: int, values: dict[str, str], branded: bool = True,
) -> list[tuple[TextElement, str, str | None]]:
    """The title card over the first clip and a caption over each captioned clip, in frames, each
    with what it is and the request field it comes from (for error messages)."""
    lengths, starts, t, total, has_card = layout.lengths, layout.starts, layout.transition, layout.total, layout.card > 0
    fade = frames(template.overlay_fade_seconds, fps)
    texts: list[tuple[TextElement, str, str | None]] = []
    title_end = 0
    if title and title.strip() and template.title_seconds > 0:
        title_end = min(frames(template.title_seconds, fps), lengths[0] if len(clips) > 1 else total)
        element = TextElement(
            role=TextRole.TITLE, text=title, start_frame=0, duration_frames=title_end,
            fade_frames=min(fade, title_end // 2), position=template.title_position,
            style=_text_style(template, template.title_font_size),
        )  # fmt: skip
        texts.append((element, f"the title ({template.title_text})", request_field(template.title_text)))
    if template.caption_seconds <= 0:
        return texts
    caption_frames = frames(template.caption_seconds, fps)
    half = (t + 1) // 2  # a caption shows while its clip dominates the crossfades
    shortest = min(frames(_MIN_CAPTION_S, fps), caption_frames)
    last = len(clips) - 1
    for i, clip in enumerate(clips):
        where = f"the caption of clip {i} ({clip.path.stem})"
        field = request_field(template.caption_text, clip=i, own=bool(clip.caption and clip.caption.strip()))
        asked = clip.caption if branded or not uses_branding(clip.caption) else None
        own = merge(asked, values, where=where, field=f"jobs.{i}.caption") if asked and asked.strip() else None
        caption = merge(template.caption_text, {**values, **clip_values(clip.room, own)}, where=where, missing=Missing.OMIT)
        if not caption:
            continue
        visible_end = starts[i] + lengths[i] - (half if i < last or has_card else 0)
        start = starts[i] + (half if i > 0 else 0)
        if i == 0 and title_end > 0 and visible_end - title_end >= frames(_MIN_CAPTION_S, fps):
            start = title_end  # the first room name after the title, when there is room for it
        end = min(start + caption_frames, visible_end)
        if end - start < max(shortest, 1):
            continue
        element = TextElement(
            role=TextRole.CAPTION, text=caption, start_frame=start, duration_frames=end - start,
            fade_frames=min(fade, (end - start) // 2), position=template.caption_position,
            style=_text_style(template, template.caption_font_size),
        )  # fmt: skip
        texts.append((element, f"the caption {caption!r} ({template.caption_text})", field))
    return texts


def _template_text(spec: TemplateText, values: dict[str, str], total: int, template: Template, fps: int) -> TextElement | None:
    """One of the template's own texts, merged and placed (None: a field without a value, or no room)."""
    text = merge(spec.text, values, where=f"the template's {spec.role} text", missing=Missing.OMIT)
    if not text:
        return None
    duration = min(frames(spec.duration_seconds, fps), total)
    start = frames(spec.offset_seconds, fps) if spec.anchor == "start" else total - frames(spec.offset_seconds, fps) - duration
    start = max(0, min(start, total - duration))
    style = TextStyle(
        font_color=spec.font_color or template.font_color, background_color=spec.background_color or template.background_color,
        background_opacity=template.background_opacity if spec.background_opacity is None else spec.background_opacity,
        font_size=spec.font_size or template.caption_font_size, subtitle_font_size=template.subtitle_font_size,
    )  # fmt: skip
    return TextElement(
        role=TextRole(spec.role), text=text, start_frame=start, duration_frames=duration,
        fade_frames=min(frames(template.overlay_fade_seconds, fps), duration // 2), position=spec.position, style=style,
    )  # fmt: skip


def _check_fits(element: TextElement, width: int, height: int, *, where: str, field: str | None) -> None:
    """`TextProblem` (INVALID_INPUT) naming `where` unless the element's text fits its place uncut."""
    try:
        place_text(element, width, height)
    except TextDoesNotFit as exc:
        raise TextProblem(f"{where} does not fit the {width}x{height} frame: {exc.message}", field=field) from exc


def title_end_frame(timeline: Timeline) -> int:
    """Where the title card ends (0: no title)."""
    return max((t.end_frame for t in timeline.texts if t.role == TextRole.TITLE), default=0)
