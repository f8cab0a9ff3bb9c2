"""Composition templates, stored as data in `zencourt_pipeline/templates/<name>.json`.

Font sizes are in pixels for an output whose short side is 1080 px; the overlays scale them to the
real output size (`Template.text_style(width, height)`).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.layout import HexColor, TextPosition, TextRole
from zencourt_pipeline.media.merge import unknown_fields
from zencourt_pipeline.media.overlays import TextStyle
from zencourt_pipeline.media.transitions import XFADE_TRANSITIONS, TransitionKind

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_TEMPLATE = "default"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


def _known_fields(value: str, *, clip: bool) -> str:
    unknown = unknown_fields(value, clip=clip)
    if unknown:
        raise ValueError(f"unknown merge field {{{{{unknown[0]}}}}}")
    return value


class TemplateText(BaseModel):
    """A text of the template beyond the title and captions, with merge fields: shown from
    `offset_seconds` after the start (`anchor` "start") or before the end ("end") of the video, for
    `duration_seconds`; left out when one of its fields has no value for the batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal[TextRole.LOWER_THIRD, TextRole.INTRO, TextRole.OUTRO]
    text: str = Field(min_length=1, max_length=300)
    position: TextPosition
    anchor: Literal["start", "end"] = "start"
    offset_seconds: float = Field(0.0, ge=0.0, le=60.0)
    duration_seconds: float = Field(3.0, gt=0.0, le=60.0)
    font_size: int | None = Field(None, ge=10, le=300)  # default: the template's caption size
    font_color: HexColor | None = None  # default: the template's
    background_color: HexColor | None = None
    background_opacity: float | None = Field(None, ge=0.0, le=1.0)

    @field_validator("text")
    @classmethod
    def _fields(cls, value: str) -> str:
        return _known_fields(value, clip=False)


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    transition: str = "fade"
    transition_seconds: float = Field(0.5, ge=0.2, le=1.5)
    title_seconds: float = Field(3.0, ge=0.0, le=10.0)  # title overlay over the first clip; 0 = none
    caption_seconds: float = Field(2.5, ge=0.0, le=10.0)  # room-name caption per clip; 0 = none
    overlay_fade_seconds: float = Field(0.4, ge=0.0, le=1.5)
    font_color: HexColor = "#FFFFFF"
    background_color: HexColor = "#000000"
    background_opacity: float = Field(0.45, ge=0.0, le=1.0)
    title_font_size: int = Field(84, ge=12, le=300)
    subtitle_font_size: int = Field(44, ge=10, le=200)
    caption_font_size: int = Field(46, ge=10, le=200)
    music: str | None = None  # file name under zencourt_pipeline/templates/
    music_volume: float = Field(0.6, ge=0.0, le=2.0)
    fade_in_seconds: float = Field(0.5, ge=0.0, le=5.0)  # video from black + music fade-in
    fade_out_seconds: float = Field(1.0, ge=0.0, le=5.0)  # video to black + music fade-out
    end_card_seconds: float = Field(0.0, ge=0.0, le=10.0)  # 0 = no end card
    end_card_text: str | None = None  # subtitle line on the end card (the title is the headline)
    logo: str | None = None  # PNG (transparency kept) under templates/; a branding profile's logo wins
    logo_position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-right"
    logo_width: float = Field(0.16, gt=0.0, le=0.5)  # logo width as a fraction of the output width
    logo_opacity: float = Field(0.9, ge=0.0, le=1.0)
    # branding (issue 15 point 3, `media.branding`), drawn in bounded windows only (the unbranded cut
    # is the branded render with those windows re-encoded): the logo bug from the start for
    # `logo_seconds`, and over the end card the logo and the contact line
    logo_seconds: float = Field(3.0, ge=0.0, le=10.0)  # 0 = no logo bug
    brand_card_seconds: float = Field(2.5, gt=0.0, le=10.0)  # the end card a profile adds when end_card_seconds is 0
    contact_position: TextPosition = TextPosition.LOWER_THIRD
    contact_font_size: int = Field(40, ge=10, le=200)
    music_identifies_agent: bool = False  # a theme song: the unbranded (MLS) cut leaves the music out
    # merge-field texts (issue 14): the title (the batch's title by default), each clip's caption
    # (`{{caption}}`: the job's caption or its room name), and the template's own texts
    title_text: str = Field("{{title}}", min_length=1, max_length=300)
    title_position: TextPosition = TextPosition.CENTER_BAND
    caption_text: str = Field("{{caption}}", min_length=1, max_length=300)
    caption_position: TextPosition = TextPosition.LOWER_LEFT
    texts: list[TemplateText] = Field(default_factory=list, max_length=8)
    transitions: list[TransitionKind] = Field(default_factory=list, max_length=16)  # cycled per clip; [] = `transition`

    @field_validator("title_text")
    @classmethod
    def _title_fields(cls, value: str) -> str:
        return _known_fields(value, clip=False)

    @field_validator("caption_text")
    @classmethod
    def _caption_fields(cls, value: str) -> str:
        return _known_fields(value, clip=True)

    def transition_after(self, index: int) -> TransitionKind:
        """The template's transition out of clip `index` (its cycle, else `transition`)."""
        return self.transitions[index % len(self.transitions)] if self.transitions else TransitionKind(self.transition)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("template name must be lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("transition")
    @classmethod
    def _transition(cls, value: str) -> str:
        if value not in XFADE_TRANSITIONS:
            raise ValueError(f"unknown xfade transition {value!r}")
        return value

    @field_validator("music", "logo")
    @classmethod
    def _bundled_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or "\\" in value or value.startswith(".")):
            raise ValueError(f"must be a bare file name under templates/, got {value!r}")
        return value

    @model_validator(mode="after")
    def _music_exists(self) -> Template:
        if self.music is not None and not (TEMPLATES_DIR / self.music).is_file():
            raise ValueError(f"music file {self.music!r} is not bundled in {TEMPLATES_DIR}")
        if self.logo is not None and not (TEMPLATES_DIR / self.logo).is_file():
            raise ValueError(f"logo file {self.logo!r} is not bundled in {TEMPLATES_DIR}")
        return self

    @property
    def music_path(self) -> Path | None:
        return TEMPLATES_DIR / self.music if self.music else None

    @property
    def logo_path(self) -> Path | None:
        return TEMPLATES_DIR / self.logo if self.logo else None

    def text_style(self) -> TextStyle:
        return TextStyle(
            font_color=self.font_color,
            background_color=self.background_color,
            background_opacity=self.background_opacity,
            title_font_size=self.title_font_size,
            subtitle_font_size=self.subtitle_font_size,
            caption_font_size=self.caption_font_size,
        )


def template_names() -> list[str]:
    """Names of the bundled templates, sorted."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.json"))


@cache
def _load(name: str) -> Template:
    path = TEMPLATES_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MediaError(ErrorCode.INVALID_INPUT, f"template {name!r} is not valid JSON: {exc}") from exc
    data.setdefault("name", name)
    try:
        template = Template.model_validate(data)
    except ValidationError as exc:
        raise MediaError(ErrorCode.INVALID_INPUT, f"template {name!r} is invalid: {exc}") from exc
    if template.name != name:
        raise MediaError(ErrorCode.INVALID_INPUT, f"template file {path.name} names itself {template.name!r}")
    return template


def load_template(name: str | None) -> Template:
    """The bundled template `name` (None -> "default")."""
    name = DEFAULT_TEMPLATE if name is None else name
    known = template_names()
    if name not in known:
        raise MediaError(ErrorCode.INVALID_INPUT, f"unknown template {name!r} (known: {', '.join(known)})")
    return _load(name)
