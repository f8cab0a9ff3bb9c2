"""Photo intake: decode an uploaded listing photo into an upright, bounded RGB JPEG.

Also the two photo shapes the clip providers want: a centre crop to the output aspect
(fal/Kling has no aspect input) and a size-bounded JPEG data URI (Runway's promptImage).
"""

from __future__ import annotations

import base64
import io
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageOps

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError

MAX_PIXELS = 80_000_000
MIN_SIDE = 64
JPEG_QUALITY = 92

# Raster formats intake decodes (JPEG includes MPO); anything else is refused as unidentified.
_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class PhotoInfo:
    """The prepared JPEG: its size, the source's format, whether EXIF rotation was applied, its bytes."""

    width: int
    height: int
    source_format: str
    exif_rotated: bool
    size_bytes: int


def prepare_photo(src: Path, dest: Path, *, max_long_side: int = 3840) -> PhotoInfo:
    """Decode `src`, make it upright RGB with the long side <= `max_long_side`, write a JPEG to `dest`."""
    src, dest = Path(src), Path(dest)
    with _opened(src) as img:
        if min(img.size) < MIN_SIDE:
            raise MediaError(
                ErrorCode.INVALID_INPUT,
                f"{src.name} is {img.width}x{img.height} px; photos must be at least {MIN_SIDE} px on each side",
            )
        source_format = img.format or "UNKNOWN"
        orientation = _orientation(img)
        _draft(img, max_long_side / max(img.size))
        _decode(img, src)
        upright = ImageOps.exif_transpose(img)
    rgb = _bound(to_rgb(upright), max_long_side)
    _save_jpeg(rgb, dest, quality=JPEG_QUALITY)
    return PhotoInfo(
        width=rgb.width,
        height=rgb.height,
        source_format=source_format,
        exif_rotated=orientation not in (0, 1),
        size_bytes=dest.stat().st_size,
    )


def crop_to_aspect(src: Path, dest: Path, width: int, height: int) -> Path:
    """Centre-crop a prepared photo to the `width`:`height` ratio and write it as a JPEG."""
    if width <= 0 or height <= 0:
        raise ValueError(f"aspect must be positive, got {width}:{height}")
    src, dest = Path(src), Path(dest)
    img = load_rgb(src)
    target = width / height
    w, h = img.size
    if w / h > target:
        new_w = max(1, min(w, round(h * target)))
        left = (w - new_w) // 2
        box = (left, 0, left + new_w, h)
    else:
        new_h = max(1, min(h, round(w / target)))
        top = (h - new_h) // 2
        box = (0, top, w, top + new_h)
    _save_jpeg(img.crop(box), dest, quality=JPEG_QUALITY)
    return dest


def jpeg_data_uri(src: Path, *, max_chars: int = 5_000_000, max_long_side: int = 1920) -> str:
    """`data:image/jpeg;base64,...` of `src`, shrunk (quality, then size) until it fits in `max_chars`."""
    prefix = "data:image/jpeg;base64,"
    img = load_rgb(Path(src))
    long_side = min(max_long_side, max(img.size))
    while long_side >= MIN_SIDE:
        sized = _bound(img, long_side)
        for quality in (90, 85, 80, 72, 64, 55):
            buf = io.BytesIO()
            sized.save(buf, "JPEG", quality=quality)
            if len(prefix) + 4 * math.ceil(buf.tell() / 3) <= max_chars:
                return prefix + base64.b64encode(buf.getvalue()).decode("ascii")
        long_side = int(long_side * 0.75)
    raise MediaError(ErrorCode.INVALID_INPUT, f"{Path(src).name} cannot fit in a {max_chars}-character data URI")


def load_rgb(src: Path, *, min_scale: float = 1.0) -> Image.Image:
    """Fully decoded, upright RGB image of `src` (any format intake accepts).

    With `min_scale` < 1 a JPEG may be decoded at 1/2, 1/4 or 1/8 size, never below that scale.
    """
    src = Path(src)
    with _opened(src) as img:
        _draft(img, min_scale)
        _decode(img, src)
        return to_rgb(ImageOps.exif_transpose(img))


def upright_size(src: Path) -> tuple[int, int]:
    """(width, height) of `src` as displayed, i.e. after its EXIF orientation, from the header only."""
    src = Path(src)
    with _opened(src) as img:
        w, h = img.size
        return (h, w) if _orientation(img) in (5, 6, 7, 8) else (w, h)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: ICC-aware for CMYK, alpha over white, 16-bit scaled down."""
    mode = img.mode
    if mode in ("RGB", "CMYK"):
        managed = _from_icc(img)
        if managed is not None:
            return managed
        return img if mode == "RGB" else img.convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _wide_to_rgb(img)
    if mode == "1":
        img = img.convert("L")
    return img.convert("RGB")


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale with more than 8 bits (I;16*, I, F) -> RGB, scaling 16-bit range to 8 bits."""
    arr = np.asarray(img).astype(np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if img.mode.startswith("I;16"):
        arr = arr / 257.0
    elif img.mode == "F" and peak <= 1.0:
        arr = arr * 255.0
    elif peak > 255.0:  # mode I / F: 16-bit data unless the values say otherwise
        arr = arr / (257.0 if peak <= 65535.0 else peak / 255.0)
    gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def _from_icc(img: Image.Image) -> Image.Image | None:
    """Convert to sRGB through the embedded ICC profile, or None when there is none / it fails."""
    icc = img.info.get("icc_profile")
    if not icc:
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, source, srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def _sniff(src: Path) -> None:
    """Refuse, by magic bytes, formats that are recognizable but unsupported."""
    try:
        with open(src, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise MediaError(ErrorCode.INVALID_INPUT, f"cannot read {src.name}: {exc}") from exc
    if not head:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{src.name} is empty")
    if _is_heif(head):
        raise MediaError(
            ErrorCode.UNSUPPORTED_FORMAT, f"{src.name} is HEIC/HEIF; export it as JPEG or PNG and upload again"
        )
    if head.startswith(b"%PDF"):
        raise MediaError(ErrorCode.UNSUPPORTED_FORMAT, f"{src.name} is a PDF document, not a photo")
    if head.startswith(b"%!PS") or head.startswith(b"\xc5\xd0\xd3\xc6"):
        raise MediaError(ErrorCode.UNSUPPORTED_FORMAT, f"{src.name} is PostScript/EPS, not a photo")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"\0" not in head and (
        text.startswith((b"<?xml", b"<svg", b"<!doctype", b"<html")) or b"<svg" in text
    ):
        kind = "SVG" if b"<svg" in text else "HTML/XML text"
        raise MediaError(ErrorCode.UNSUPPORTED_FORMAT, f"{src.name} is {kind}; only raster photos are accepted")


def _is_heif(head: bytes) -> bool:
    """ISO-BMFF `ftyp` naming a HEIF brand (major or compatible), unless it is AVIF, which Pillow reads."""
    if head[4:8] != b"ftyp":
        return False
    size = int.from_bytes(head[0:4], "big")
    box = head[8 : min(max(size, 16), len(head))]
    brands = {box[0:4]} | {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    return bool(brands & _HEIF_BRANDS) and not brands & {b"avif", b"avis"}


@contextmanager
def _opened(src: Path) -> Iterator[Image.Image]:
    """Open `src` lazily with the supported formats, enforcing the pixel limit before any decode."""
    if not src.is_file():
        raise MediaError(ErrorCode.INVALID_INPUT, f"no such file: {src}")
    _sniff(src)
    with open(src, "rb") as fh:
        img = _identify(fh, src)
        try:
            yield img
        finally:
            img.close()


def _identify(fh: BinaryIO, src: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fh, formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{src.name} is too large to decode safely ({exc})") from exc
    except Image.UnidentifiedImageError as exc:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{src.name} is not a recognizable image file") from exc
    except Exception as exc:  # corrupt headers raise assorted errors inside Pillow's plugins
        raise MediaError(ErrorCode.INVALID_INPUT, f"{src.name} has a corrupt image header: {exc}") from exc
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise MediaError(
            ErrorCode.INVALID_INPUT,
            f"{src.name} claims {w}x{h} px ({w * h / 1e6:.0f} MP); the limit is {MAX_PIXELS / 1e6:.0f} MP",
        )
    return img


def _decode(img: Image.Image, src: Path) -> None:
    """Force the full decode of the first frame so truncated or corrupt data fails here."""
    try:
        img.load()  # frame 0 only: an animated GIF/WebP becomes its first frame
    except Exception as exc:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{src.name} is truncated or corrupt: {exc}") from exc


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block should not sink an otherwise good photo
        return 1


def _draft(img: Image.Image, scale: float) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 size when that stays at or above `scale`."""
    if scale < 0.5 and img.format in ("JPEG", "MPO"):
        img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))


def _bound(img: Image.Image, max_long_side: int) -> Image.Image:
    """Downscale (LANCZOS, never up) so the long side is at most `max_long_side`."""
    w, h = img.size
    if max(w, h) <= max_long_side:
        return img
    scale = max_long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _save_jpeg(img: Image.Image, dest: Path, *, quality: int) -> None:
    """Write `img` as a baseline JPEG without metadata, atomically (temp file + os.replace)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            img.convert("RGB").save(fh, "JPEG", quality=quality, optimize=True)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
