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

import base64
import binascii
import io
from pathlib import Path
from typing import Annotated

from PIL import Image
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
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


MAX_LOGO_BYTES = 512 * 1024
_LOGO_FORMATS = {"PNG": ".png", "JPEG": ".jpg"}


class BrandingProfile(Branding):
    """The stored and API form of a profile (a workspace's, `db/branding.py`, or a batch's
    override): `logo` is the image itself, base64 (a PNG or JPEG of at most 512 KB)."""

    logo: str | None = None  # type: ignore[assignment]

    @field_validator("logo")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None:
            _logo_format(value)
        return value

    def branding(self, logo_dir: Path) -> Branding:
        """The profile as the template applies it, its logo written into `logo_dir`."""
        fields = self.model_dump(exclude={"logo"})
        if self.logo is None:
            return Branding(**fields)
        data = base64.b64decode(self.logo)
        logo_dir.mkdir(parents=True, exist_ok=True)
        path = logo_dir / f"brand-logo{_LOGO_FORMATS[_logo_format(self.logo)]}"
        path.write_bytes(data)
        return Branding(**fields, logo=path)


def _logo_format(value: str) -> str:
    """The image format of a base64 logo ("PNG" or "JPEG"); ValueError saying what is wrong."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("logo must be a base64-encoded PNG or JPEG") from None
    if len(data) > MAX_LOGO_BYTES:
        raise ValueError(f"logo is {len(data)} bytes, more than {MAX_LOGO_BYTES}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format or ""
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ValueError("logo is not a readable PNG or JPEG image") from None
    if kind not in _LOGO_FORMATS:
        raise ValueError(f"logo is a {kind or 'unknown'} image, not a PNG or JPEG")
    return kind
