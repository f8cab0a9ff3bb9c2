"""The step after building a timeline: render its text, image and end-card elements as PNGs
(`media/overlays.py` draws them) and note what the filter graph needs besides the timeline."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from zencourt_pipeline.media import overlays
from zencourt_pipeline.media.timeline.model import TextElement, TextPosition, TextStyle, Timeline


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
    (not already the output size); `loudnorm` is the music bed's second-pass filter; `soundtrack`,
    when set, the timeline's audio already mixed, normalized and encoded (`media.soundtrack`): it is
    muxed by stream copy instead of being mixed and encoded again."""

    layers: tuple[Layer, ...] = ()
    end_card: Path | None = None
    rescale: tuple[bool, ...] = ()
    loudnorm: str | None = None
    soundtrack: Path | None = None

    def with_inputs(
        self, *, rescale: tuple[bool, ...] = (), loudnorm: str | None = None, soundtrack: Path | None = None
    ) -> RenderAssets:
        """The same PNGs with the clip and music measurements (and the encoded soundtrack)."""
        return replace(self, rescale=tuple(rescale), loudnorm=loudnorm, soundtrack=soundtrack)


def _style(style: TextStyle, *, title: bool) -> overlays.TextStyle:
    size = {"title_font_size": style.font_size} if title else {"caption_font_size": style.font_size}
    return overlays.TextStyle(
        font_color=style.font_color, background_color=style.background_color,
        background_opacity=style.background_opacity, subtitle_font_size=style.subtitle_font_size, **size,
    )  # fmt: skip


_BANDS = {TextPosition.CENTER_BAND: "center", TextPosition.LOWER_THIRD: "lower", TextPosition.UPPER_BAND: "upper"}
_BOXES = {TextPosition.CENTER_BOX: "center"}  # the other boxes are named as the overlay corners


def place_text(text: TextElement, width: int, height: int, dest: Path | None = None) -> overlays.OverlayImage:
    """Lay `text` out on a width x height frame with its font measured (its PNG written to `dest`
    unless None); `overlays.TextDoesNotFit` (INVALID_INPUT) when it would have to be cut."""
    if text.position.is_band:
        return overlays.render_title_card(
            dest, width=width, height=height, title=text.text, style=_style(text.style, title=True),
            where=_BANDS[text.position], strict=True,
        )  # fmt: skip
    return overlays.render_caption(
        dest, width=width, height=height, text=text.text, style=_style(text.style, title=False),
        corner=_BOXES.get(text.position, text.position.value), strict=True,
    )  # fmt: skip


def render_assets(timeline: Timeline, work: Path) -> RenderAssets:
    """Render every overlay PNG of `timeline` into `work` (the timeline itself is not changed)."""
    w, h = timeline.width, timeline.height
    layers: list[Layer] = []
    for k, text in enumerate(timeline.texts):
        image = place_text(text, w, h, work / f"text_{k:03d}.png")
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



