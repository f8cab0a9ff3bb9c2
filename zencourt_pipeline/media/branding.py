"""The listing agent's branding (issue 15 point 3): who the branded cut names and how it looks.

A workspace stores one profile (`db/branding.py`), a batch may override any of its fields; the
template applies it (`timeline/build.py`) in bounded windows only:

* the **logo bug**: the logo in the template's corner for the first `Template.logo_seconds`;
* the **end card**: the agent's name and brokerage on the brand colour, with the logo;
* the **contact line**: phone, email and website over the end card.

Why bounded windows and not a logo over the whole video: the MLS-unbranded cut must carry none of
it, and a cut that differs from the branded one only in those windows is made from the branded
render by re-encoding the windows alone and stream-copying every other GOP
(`smart/derive.py`): a fraction of a render, where a logo over every frame would leave nothing
to copy. The unbranded cut keeps an end card of the same length (the listing's title on the
template's colours), so both cuts have the same length and the unbranded one can take the branded
one's audio by stream copy when no music identifies the agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

from zencourt_pipeline.media.layout import HexColor

_Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
_Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]  # fmt: skip
_Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=40, pattern=r"^[0-9+().\- ]+$")]  # fmt: skip
_Website = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200, pattern=r"^[^\s]+\.[^\s]+$")]  # fmt: skip

CONTACT_SEPARATOR = "  ·  "


class Branding(BaseModel):
    """A branding profile (every field optional; camelCase or snake_case keys). `logo` is a local
    image file at render time (the stored profile keeps the image's bytes, `db/branding.py`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    agent_name: _Line | None = None
    brokerage: _Line | None = None
    phone: _Phone | None = None
    email: _Email | None = None
    website: _Website | None = None
    logo: Path | None = None
    primary_color: HexColor | None = None  # the end card's and the contact line's background
    text_color: HexColor | None = None  # their text

    def over(self, base: Branding | None) -> Branding:
        """This profile's fields over `base` (a batch's override over its workspace's profile): each
        field set here wins, the others are `base`'s."""
        if base is None:
            return self
        return base.model_copy(update=self.model_dump(exclude_none=True))

    def contact_line(self) -> str | None:
        """Phone, email and website on one line (None: none of them)."""
        parts = [p for p in (self.phone, self.email, self.website) if p]
        return CONTACT_SEPARATOR.join(parts) or None

    @property
    def names_agent(self) -> bool:
        """Whether the profile draws anything (a name, a brokerage, a contact or a logo)."""
        return any((self.agent_name, self.brokerage, self.contact_line(), self.logo))
