"""What a text on the video is and where it goes: the enums the timeline (`timeline.model`) and the
templates (`templates.py`) share."""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import AfterValidator

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


def hex_color(value: str) -> str:
    """`value` as an upper-case `#RRGGBB` colour, or ValueError."""
    if not _HEX.match(value):
        raise ValueError(f"colour must look like #RRGGBB, got {value!r}")
    return value.upper()


HexColor = Annotated[str, AfterValidator(hex_color)]  # a text's or a band's colour, written once


class TextRole(enum.StrEnum):
    """What a text element is: the title, a clip's caption, or one of the template's own texts."""

    TITLE = "title"
    CAPTION = "caption"
    LOWER_THIRD = "lower_third"  # a template's facts line (price, beds, baths, ...)
    INTRO = "intro"  # a template's opening text (the address)
    OUTRO = "outro"  # a template's closing text (the agent card)
    CONTACT = "contact"  # the branding profile's contact line (phone, email, website) over the end card


class TextPosition(enum.StrEnum):
    """Where a text element goes on the frame: a full-width band or a box sized to its text."""

    CENTER_BAND = "center-band"  # a full-width translucent band a little below the centre
    LOWER_LEFT = "lower-left"  # a translucent box at the lower left
    LOWER_RIGHT = "lower-right"  # a translucent box at the lower right
    UPPER_LEFT = "upper-left"  # a translucent box at the upper left
    CENTER_BOX = "center-box"  # a translucent box in the middle (a card)
    LOWER_THIRD = "lower-third"  # a full-width translucent band along the bottom
    UPPER_BAND = "upper-band"  # a full-width translucent band along the top

    @property
    def is_band(self) -> bool:
        """True for the full-width bands (the others are boxes sized to their text)."""
        return self in (TextPosition.CENTER_BAND, TextPosition.LOWER_THIRD, TextPosition.UPPER_BAND)
