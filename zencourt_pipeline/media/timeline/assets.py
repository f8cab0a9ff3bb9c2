"""The step after building a timeline: render its text, image and end-card elements as PNGs
(`media/overlays.py` draws them) and note what the filter graph needs besides the timeline."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from zencourt_pipeline.media import overlays
from zencourt_pipeline.media.timeline.model import TextPosition, TextStyle, Timeline


@dataclass(frozen=True)
class Layer:
    """A rendered overlay PNG and where its top-left corner goes on the output frame."""

    image: Path
    x: int
    y: int


@dataclass(frozen=True)
class RenderAssets:
    """What the filter graph reads next to the timeline: one layer per text element then per image
    element (in the timeline's order), the end card PNG, and per clip whether it must be rescaled
    (not already the output size); `loudnorm` is the music bed's second-pass filter."""

    layers: tuple[Layer, ...] = ()
    end_card: Path | None = None
    rescale: tuple[bool, ...] = ()
    loudnorm: str | None = None

    def with_inputs(self, *, rescale: tuple[bool, ...] = (), loudnorm: str | None = None) -> RenderAssets:
        """The same PNGs with the clip and music measurements."""
        return replace(self, rescale=tuple(rescale), loudnorm=loudnorm)


def _style(style: TextStyle, *, title: bool) -> overlays.TextStyle:
    size = {"title_font_size": style.font_size} if title else {"caption_font_size": style.font_size}
    return overlays.TextStyle(
        font_color=style.font_color, background_color=style.background_color,
        background_opacity=style.background_opacity, subtitle_font_size=style.subtitle_font_size, **size,
    )  # fmt: skip


def render_assets(timeline: Timeline, work: Path) -> RenderAssets:
    """Render every overlay PNG of `timeline` into `work` (the timeline itself is not changed)."""
    w, h = timeline.width, timeline.height
    layers: list[Layer] = []
    for k, text in enumerate(timeline.texts):
        if text.position == TextPosition.CENTER_BAND:
            image = overlays.render_title_card(
                work / f"text_{k:03d}.png", width=w, height=h, title=text.text, style=_style(text.style, title=True)
            )
        else:
            image = overlays.render_caption(
                work / f"text_{k:03d}.png", width=w, height=h, text=text.text, style=_style(text.style, title=False)
            )
        layers.append(Layer(image.path, image.x, image.y))
    for k, element in enumerate(timeline.images):
        image = overlays.render_logo(
            work / f"image_{k:03d}.png", Path(element.source), width=w, height=h, position=element.position.value,
            width_fraction=element.width_fraction, opacity=element.opacity,
        )  # fmt: skip
        layers.append(Layer(image.path, image.x, image.y))
    card = timeline.end_card
    end_card = None
    if card is not None:
        end_card = overlays.render_end_card(
            work / "end_card.png", width=w, height=h, title=card.title, subtitle=card.subtitle,
            style=_style(card.style, title=True),
        )  # fmt: skip
    return RenderAssets(layers=tuple(layers), end_card=end_card, rescale=tuple(False for _ in timeline.clips))



