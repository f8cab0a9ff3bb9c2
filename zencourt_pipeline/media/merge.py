"""Merge fields: `{{address}}`, `{{price}}`, ... in a template's text (and in a batch's title or a
job's caption), filled from the batch's `ListingFacts` and each clip's room and caption (pure).

Values are inserted as they are (a value's own braces are not merged again). A text with a field
the pipeline does not know is an error naming it; a known field without a value is an error
(`Missing.ERROR`: text the caller wrote) or leaves the text out (`Missing.OMIT`: a template's
optional element, such as a price line for a batch without a price).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.branding import Branding
from zencourt_pipeline.media.errors import MediaError


class MergeField(enum.StrEnum):
    """A field a text may name as `{{field}}`."""

    ADDRESS = "address"
    PRICE = "price"
    BEDS = "beds"
    BATHS = "baths"
    SQFT = "sqft"
    AGENT_NAME = "agent_name"
    BROKERAGE = "brokerage"  # the branding profile's (`media.branding`)
    PHONE = "phone"
    EMAIL = "email"
    WEBSITE = "website"
    TITLE = "title"  # the batch's title
    ROOM = "room"  # the clip's room name
    CAPTION = "caption"  # the clip's caption, falling back to its room name


CLIP_FIELDS = frozenset({MergeField.ROOM, MergeField.CAPTION})  # only over a clip
# what names the listing agent: an unbranded (MLS) cut leaves out every text that merges one
BRANDING_FIELDS = frozenset(
    {MergeField.AGENT_NAME, MergeField.BROKERAGE, MergeField.PHONE, MergeField.EMAIL, MergeField.WEBSITE}
)
_FIELD = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class TextProblem(MediaError):
    """A text that cannot be rendered as asked (INVALID_INPUT); `field` is the request field to fix
    (snake_case path: `title`, `jobs.2.caption`, `facts.address`), None when it is the template's."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(ErrorCode.INVALID_INPUT, message)
        self.field = field


class Missing(enum.StrEnum):
    """What a known field without a value does to its text."""

    ERROR = "error"
    OMIT = "omit"


def fields_of(text: str) -> list[str]:
    """The field names `text` uses, in order (unknown ones included)."""
    return [m.group(1) for m in _FIELD.finditer(text)]


def uses_branding(text: str | None) -> bool:
    """True when `text` merges a field that names the agent (`BRANDING_FIELDS`)."""
    return bool(text) and any(name in BRANDING_FIELDS for name in fields_of(text or ""))


def unknown_fields(text: str, *, clip: bool = True) -> list[str]:
    """The fields of `text` that are not merge fields (nor clip fields, unless `clip`)."""
    known = {f.value for f in MergeField if clip or f not in CLIP_FIELDS}
    return [name for name in fields_of(text) if name not in known]


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")


def fact_values(facts: ListingFacts, title: str | None = None) -> dict[str, str]:
    """The batch-level field values as text: price `$1,250,000` (a string price as given), beds and
    baths `3` / `2.5`, sqft `1,850`; fields without a value are left out."""
    values: dict[str, str] = {}
    if facts.address:
        values[MergeField.ADDRESS] = facts.address
    if facts.price is not None:
        values[MergeField.PRICE] = facts.price if isinstance(facts.price, str) else f"${_number(facts.price)}"
    for name, number in ((MergeField.BEDS, facts.beds), (MergeField.BATHS, facts.baths), (MergeField.SQFT, facts.sqft)):
        if number is not None:
            values[name] = _number(number)
    if facts.agent_name:
        values[MergeField.AGENT_NAME] = facts.agent_name
    if title and title.strip():
        values[MergeField.TITLE] = title.strip()
    return values


def branding_values(branding: Branding | None) -> dict[str, str]:
    """The branding profile's field values (brokerage, phone, email, website) that it has."""
    if branding is None:
        return {}
    pairs = ((MergeField.BROKERAGE, branding.brokerage), (MergeField.PHONE, branding.phone),
             (MergeField.EMAIL, branding.email), (MergeField.WEBSITE, branding.website))  # fmt: skip
    return {name: value for name, value in pairs if value}


def clip_values(room: str | None, caption: str | None) -> dict[str, str]:
    """A clip's field values: its room name, and its caption (the room name when it has none)."""
    values = {}
    if room and room.strip():
        values[MergeField.ROOM] = room.strip()
    if (caption or room or "").strip():
        values[MergeField.CAPTION] = (caption or room or "").strip()
    return values


def merge(
    text: str, values: Mapping[str, str], *, where: str, missing: Missing = Missing.ERROR, field: str | None = None
) -> str | None:
    """`text` with its fields replaced by `values`; None when a field has no value and `missing` is
    OMIT; `TextProblem` (INVALID_INPUT, about `field`) naming `where` and the merge field otherwise."""
    unknown = unknown_fields(text)
    if unknown:
        known = ", ".join(f.value for f in MergeField)
        raise TextProblem(f"{where} uses unknown merge field {{{{{unknown[0]}}}}} (known: {known})", field=field)
    absent = [name for name in fields_of(text) if name not in values]
    if absent:
        if missing == Missing.OMIT:
            return None
        raise TextProblem(f"{where} uses {{{{{absent[0]}}}}}, which has no value for this batch", field=field)
    merged = _FIELD.sub(lambda m: values[m.group(1)], text)
    return " ".join(merged.split()) or None


def request_field(text: str, *, clip: int | None = None, own: bool = False) -> str | None:
    """The request field behind a text written as `text` (a template's, or the caller's when `own`):
    `title`, `jobs.<clip>.caption` / `room_name`, or the first fact it merges (`facts.address`)."""
    names = fields_of(text)
    if MergeField.CAPTION in names or MergeField.ROOM in names:
        return f"jobs.{clip}.{'caption' if own else 'room_name'}" if clip is not None else None
    if MergeField.TITLE in names:
        return "title"
    return next((f"facts.{name}" for name in names if name in {f.value for f in MergeField}), None)
