"""Text cards rendered with Pillow as PNGs that the compose graph overlays or shows full-frame.

Title cards and captions are transparent PNGs cropped to their band/box, returned with the x, y
where they go on a width x height frame (small overlays are cheap to blend). The end card is an
opaque full-frame PNG. Font sizes in `TextStyle` are for a 1080 px short side and scale with the
output; long text is wrapped (up to two lines) and shrunk until it fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
)
_REFERENCE_SHORT_SIDE = 1080
_MIN_SHRINK = 0.45  # never shrink text below this fraction of its styled size


@dataclass(frozen=True)
class TextStyle:
    font_color: str = "#FFFFFF"
    background_color: str = "#000000"
    background_opacity: float = 0.45
    title_font_size: int = 84
    subtitle_font_size: int = 44
    caption_font_size: int = 46


@dataclass(frozen=True)
class OverlayImage:
    """A PNG and where its top-left corner goes on the output frame."""

    path: Path
    x: int
    y: int
    width: int
    height: int


@cache
def _font_file() -> str | None:
    for candidate in _FONT_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    return None


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold when installed, otherwise Pillow's bundled scalable default font."""
    path = _font_file()
    if path:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def _rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def _scale(width: int, height: int) -> float:
    return min(width, height) / _REFERENCE_SHORT_SIDE


def _text_width(fnt, text: str) -> int:
    left, _, right, _ = fnt.getbbox(text)
    return int(right - left)


def _wrap(fnt, text: str, max_width: int) -> list[str]:
    """Greedy word wrap; a single word wider than max_width stays on its own line."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if not current or _text_width(fnt, candidate) <= max_width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


class TextDoesNotFit(MediaError):
    """Text that would have to be cut to fit its place on the frame (INVALID_INPUT)."""


def fit_text(
    text: str, size: int, max_width: int, max_lines: int = 2, *, strict: bool = False
) -> tuple[object, list[str]]:
    """The font and lines for `text`: wrapped to at most max_lines and shrunk until every line fits;
    what still does not fit ends with an ellipsis, or raises `TextDoesNotFit` when `strict`."""
    text = " ".join(text.split())
    smallest = max(8, int(size * _MIN_SHRINK))
    step = max(1, size // 24)
    # Prefer one line at up to 30% smaller, then wrapping at the full size, then shrinking the wrap.
    for current in range(size, max(smallest, int(size * 0.7)) - 1, -step):
        fnt = font(current)
        if _text_width(fnt, text) <= max_width:
            return fnt, [text]
    for current in range(size, smallest - 1, -step):
        fnt = font(current)
        lines = _wrap(fnt, text, max_width)
        if len(lines) <= max_lines and all(_text_width(fnt, line) <= max_width for line in lines):
            return fnt, lines
    if strict:
        raise TextDoesNotFit(
            ErrorCode.INVALID_INPUT,
            f"{text!r} does not fit in {max_lines} line(s) of {max_width} px, even at {smallest} px type",
        )
    # Still too long at the smallest size: keep what fits and end with an ellipsis.
    fnt = font(smallest)
    wrapped = _wrap(fnt, text, max_width)
    lines = wrapped[:max_lines]
    for i, line in enumerate(lines):
        last_cut = i == len(lines) - 1 and len(wrapped) > max_lines
        if last_cut or _text_width(fnt, line) > max_width:
            lines[i] = _ellipsize(fnt, line, max_width)
    return fnt, lines


def _ellipsize(fnt, line: str, max_width: int) -> str:
    while line and _text_width(fnt, line + "…") > max_width:
        line = line[:-1]
    return line.rstrip() + "…"


def _line_height(fnt) -> int:
    ascent, descent = fnt.getmetrics()
    return ascent + descent


def _save_png(image: Image.Image, dest: Path) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp.png")
    image.save(tmp, format="PNG", optimize=False, compress_level=1)
    os.replace(tmp, dest)
    return dest


def _check_size(width: int, height: int) -> None:
    if width < 16 or height < 16:
        raise MediaError(ErrorCode.INVALID_INPUT, f"overlay frame size {width}x{height} is too small")


def _text_block(
    title: str, subtitle: str | None, style: TextStyle, scale: float, max_width: int, strict: bool = False
):
    """Fonts, lines and total height for a title (+ optional subtitle) block."""
    title_font, title_lines = fit_text(
        title, max(10, round(style.title_font_size * scale)), max_width, 2, strict=strict
    )
    sub_font, sub_lines = None, []
    if subtitle and subtitle.strip():
        sub_font, sub_lines = fit_text(
            subtitle, max(8, round(style.subtitle_font_size * scale)), max_width, 2
        )
    gap = round(16 * scale)
    total = len(title_lines) * _line_height(title_font)
    if sub_lines:
        total += gap + len(sub_lines) * _line_height(sub_font)
    return title_font, title_lines, sub_font, sub_lines, gap, total


def _draw_centered_block(draw, block, *, width: int, top: int, color) -> None:
    title_font, title_lines, sub_font, sub_lines, gap, _ = block
    y = top
    for line in title_lines:
        draw.text((width // 2, y), line, font=title_font, fill=color, anchor="ma")
        y += _line_height(title_font)
    if sub_lines:
        y += gap
        for line in sub_lines:
            draw.text((width // 2, y), line, font=sub_font, fill=color, anchor="ma")
            y += _line_height(sub_font)


def render_title_card(
    dest: Path | None,
    *,
    width: int,
    height: int,
    title: str,
    subtitle: str | None = None,
    style: TextStyle | None = None,
    where: str = "center",
    strict: bool = False,
) -> OverlayImage:
    """A full-width translucent band with the centred title (and subtitle), placed a little below
    centre (`where` "center"), along the bottom ("lower") or along the top ("upper")."""
    _check_size(width, height)
    style = style or TextStyle()
    scale = _scale(width, height)
    margin = max(8, round(width * 0.06))
    block = _text_block(title, subtitle, style, scale, width - 2 * margin, strict)
    pad = round(36 * scale)
    band_h = block[-1] + 2 * pad
    band_h += band_h % 2
    image = Image.new("RGBA", (width, band_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    alpha = round(255 * style.background_opacity)
    draw.rectangle((0, 0, width, band_h), fill=(*_rgb(style.background_color), alpha))
    _draw_centered_block(draw, block, width=width, top=pad, color=(*_rgb(style.font_color), 255))
    edge = round(height * (0.1 if height > width else 0.06))
    y = {"lower": height - edge - band_h, "upper": edge}.get(
        where, round(height * (0.55 if height > width else 0.5) - band_h / 2)
    )
    if strict and band_h > height // 3:
        raise TextDoesNotFit(ErrorCode.INVALID_INPUT, f"{title!r} needs a {band_h} px band, over a third of the frame")
    y = min(max(0, y), height - band_h)
    if dest is not None:  # None: measure only
        _save_png(image, dest)
    return OverlayImage(path=Path(dest or ""), x=0, y=y - y % 2, width=width, height=band_h)


def render_caption(
    dest: Path | None, *, width: int, height: int, text: str, style: TextStyle | None = None,
    corner: str = "lower-left", strict: bool = False,
) -> OverlayImage:
    """A caption in a translucent box at the lower left (or `corner`: lower-right, upper-left, center)."""
    _check_size(width, height)
    style = style or TextStyle()
    scale = _scale(width, height)
    margin = max(8, round(min(width, height) * 0.05))
    pad_x, pad_y = round(28 * scale), round(16 * scale)
    max_text = width - 2 * margin - 2 * pad_x
    fnt, lines = fit_text(text, max(10, round(style.caption_font_size * scale)), max_text, 2, strict=strict)
    line_h = _line_height(fnt)
    box_w = max(_text_width(fnt, line) for line in lines) + 2 * pad_x
    box_h = len(lines) * line_h + 2 * pad_y
    box_w += box_w % 2
    box_h += box_h % 2
    image = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    alpha = round(255 * style.background_opacity)
    radius = round(10 * scale)
    draw.rounded_rectangle(
        (0, 0, box_w - 1, box_h - 1), radius=radius, fill=(*_rgb(style.background_color), alpha)
    )
    y = pad_y
    for line in lines:
        draw.text((pad_x, y), line, font=fnt, fill=(*_rgb(style.font_color), 255), anchor="la")
        y += line_h
    if strict and box_h > height // 3:
        raise TextDoesNotFit(ErrorCode.INVALID_INPUT, f"{text!r} needs a {box_h} px box, over a third of the frame")
    x = margin if corner.endswith("left") else width - margin - box_w if corner.endswith("right") else (width - box_w) // 2
    bottom = round(height * (0.12 if height > width else 0.07))
    y0 = {"upper-left": bottom, "center": (height - box_h) // 2}.get(corner, height - bottom - box_h)
    y0 = min(max(0, y0), height - box_h)
    x = max(0, x)
    if dest is not None:  # None: measure only
        _save_png(image, dest)
    return OverlayImage(path=Path(dest or ""), x=x - x % 2, y=y0 - y0 % 2, width=box_w, height=box_h)


def render_end_card(
    dest: Path,
    *,
    width: int,
    height: int,
    title: str | None,
    subtitle: str | None = None,
    style: TextStyle | None = None,
) -> Path:
    """An opaque full-frame card in the title style: background colour, centred title and subtitle."""
    _check_size(width, height)
    style = style or TextStyle()
    image = Image.new("RGB", (width, height), _rgb(style.background_color))
    headline = (title or "").strip() or (subtitle or "").strip()
    if headline:
        second = subtitle if (title or "").strip() else None
        scale = _scale(width, height)
        margin = max(8, round(width * 0.08))
        block = _text_block(headline, second, style, scale, width - 2 * margin)
        draw = ImageDraw.Draw(image)
        _draw_centered_block(
            draw, block, width=width, top=(height - block[-1]) // 2, color=_rgb(style.font_color)
        )
    return _save_png(image, dest)


def render_logo(
    dest: Path,
    src: Path,
    *,
    width: int,
    height: int,
    position: str = "top-right",
    width_fraction: float = 0.16,
    opacity: float = 0.9,
) -> OverlayImage:
    """The logo PNG resized to `width_fraction` of the frame width, faded to `opacity`, in a corner."""
    _check_size(width, height)
    try:
        with Image.open(src) as img:
            img.load()
            logo = img.convert("RGBA")
    except (OSError, ValueError) as exc:
        raise MediaError(ErrorCode.INVALID_INPUT, f"logo {Path(src).name} is not a readable image: {exc}") from exc
    margin = max(8, round(min(width, height) * 0.04))
    target_w = max(8, min(round(width * width_fraction), width - 2 * margin))
    target_h = max(8, round(logo.height * target_w / logo.width))
    if target_h > height // 3:  # very tall logos: bound the height instead
        target_h = height // 3
        target_w = max(8, round(logo.width * target_h / logo.height))
    target_w += target_w % 2
    target_h += target_h % 2
    logo = logo.resize((target_w, target_h), Image.Resampling.LANCZOS)
    if opacity < 1.0:
        alpha = logo.getchannel("A").point(lambda a: round(a * opacity))
        logo.putalpha(alpha)
    x = margin if position.endswith("left") else width - margin - target_w
    y = margin if position.startswith("top") else height - margin - target_h
    _save_png(logo, dest)
    return OverlayImage(path=Path(dest), x=x - x % 2, y=y - y % 2, width=target_w, height=target_h)
