"""The template applies a branding profile (`media.branding`) to a timeline being built: the logo
bug, the end card and the contact line, each in a bounded window (pure, frames).

Windows: the logo bug covers [0, logo_seconds) and the end card [card_start, total); the logo and
the contact line over the card appear once its transition is over. Nothing of the branding reaches
into the frames between, so the branded and the unbranded cut share every GOP there
(`smart/derive.py` copies them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zencourt_pipeline.media.branding import Branding
from zencourt_pipeline.media.timeline.model import (
    Corner,
    EndCard,
    ImageElement,
    ImageRole,
    TextElement,
    TextRole,
    TextStyle,
)

if TYPE_CHECKING:
    from zencourt_pipeline.media.templates import Template


@dataclass(frozen=True)
class BrandWindows:
    """Where the branding may draw: the logo bug's frames from 0, and the end card's span."""

    bug_frames: int
    card_start: int | None  # where the card's transition starts (None: no card)
    card_shown: int | None  # where the card is fully shown (after its transition)
    total: int


def card_seconds(template: Template, branding: Branding | None) -> float:
    """The end card's length: the template's, else `brand_card_seconds` when a profile brands the
    video (the same for the branded and the unbranded cut: both have the card)."""
    if template.end_card_seconds > 0:
        return template.end_card_seconds
    return template.brand_card_seconds if branding is not None and branding.names_agent else 0.0


def end_card(
    template: Template, branding: Branding | None, *, title: str | None, style: TextStyle, branded: bool
) -> EndCard | None:
    """The card's content: the agent's name and brokerage on the brand colours (branded, with a
    profile), else the listing's title and the template's line on the template's colours."""
    if branded and branding is not None and branding.names_agent:
        colours = {"background_color": branding.primary_color, "font_color": branding.text_color}
        style = style.model_copy(update={k: v for k, v in colours.items() if v})
        return EndCard(
            duration_frames=1, title=branding.agent_name or title,
            subtitle=branding.brokerage or template.end_card_text, style=style,
        )  # fmt: skip  (the caller sets the length)
    return EndCard(duration_frames=1, title=title, subtitle=template.end_card_text, style=style)


def logo_elements(template: Template, branding: Branding | None, windows: BrandWindows, fade: int) -> list[ImageElement]:
    """The logo bug at the start and the logo over the end card (the profile's logo, else the
    template's); none without a logo."""
    logo: Path | None = branding.logo if branding is not None and branding.logo else template.logo_path
    if logo is None:
        return []
    common = {
        "role": ImageRole.LOGO, "source": str(logo), "position": Corner(template.logo_position),
        "width_fraction": template.logo_width, "opacity": template.logo_opacity,
    }  # fmt: skip
    images = []
    end_of_bug = windows.card_start if windows.card_start is not None else windows.total
    bug = min(windows.bug_frames, end_of_bug)
    if bug > 0:
        images.append(ImageElement(start_frame=0, duration_frames=bug, fade_frames=min(fade, bug // 2), **common))
    if windows.card_shown is not None and windows.total > windows.card_shown:
        images.append(ImageElement(start_frame=windows.card_shown, duration_frames=windows.total - windows.card_shown, **common))
    return images


def contact_element(template: Template, branding: Branding | None, windows: BrandWindows) -> TextElement | None:
    """The contact line over the end card, in the brand colours (None: no contact or no card)."""
    line = branding.contact_line() if branding is not None else None
    if not line or windows.card_shown is None or windows.total <= windows.card_shown:
        return None
    style = TextStyle(
        font_color=branding.text_color or template.font_color,  # type: ignore[union-attr]
        background_color=branding.primary_color or template.background_color,  # type: ignore[union-attr]
        background_opacity=max(template.background_opacity, 0.8), font_size=template.contact_font_size,
        subtitle_font_size=template.subtitle_font_size,
    )  # fmt: skip
    return TextElement(
        role=TextRole.CONTACT, text=line, start_frame=windows.card_shown,
        duration_frames=windows.total - windows.card_shown, position=template.contact_position, style=style,
    )  # fmt: skip
