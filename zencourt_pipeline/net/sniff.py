"""What a downloaded file really is, from its first bytes (never from a Content-Type header).

`sniff_image_type` names raster formats intake decodes and the recognizable non-photos that
people upload or servers answer instead (HEIC, SVG, HTML error pages, PDF); `sniff_video`
names the video containers a provider output may be; `sniff_audio` the narration files a batch
may carry (MP3, WAV, M4A, raw AAC). Both read at most `HEAD_BYTES`; an ISO-BMFF
`ftyp` box is read with `media.mp4index.box_header`, the package's one box walker.
"""

from __future__ import annotations

from pathlib import Path

from zencourt_pipeline.media.mp4index import BoxError, box_header

HEAD_BYTES = 1024

# Raster formats `media.photos.prepare_photo` decodes.
RASTER_IMAGE_TYPES = frozenset({"jpeg", "png", "gif", "webp", "bmp", "tiff", "avif"})
# Recognizable, but not a photo intake accepts: UNSUPPORTED_FORMAT (as media/photos.py says).
UNSUPPORTED_IMAGE_TYPES = frozenset({"heic", "svg", "html", "xml", "pdf", "postscript", "mp4", "quicktime", "webm"})

DESCRIPTIONS = {
    "heic": "HEIC/HEIF (export it as JPEG or PNG)",
    "svg": "an SVG drawing",
    "html": "an HTML page",
    "xml": "an XML document",
    "pdf": "a PDF document",
    "postscript": "PostScript/EPS",
    "mp4": "an MP4 video",
    "quicktime": "a QuickTime video",
    "webm": "a WebM/Matroska video",
}

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
    b"M4VH", b"M4VP", b"dash", b"msnv", b"mmp4", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"f4v ",
}  # fmt: skip


def read_head(source: Path | bytes, size: int = HEAD_BYTES) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source[:size])
    with open(source, "rb") as fh:
        return fh.read(size)


def ftyp_brands(head: bytes) -> set[bytes] | None:
    """The major and compatible brands of the `ftyp` box a file starts with (`head`: its first
    bytes), or None when it does not start with one."""
    if len(head) < 12:
        return None
    try:
        box = box_header(head, 0, len(head))
    except BoxError:
        return None
    if box.kind != b"ftyp":
        return None
    payload = head[box.header : min(max(box.size, box.header + 8), len(head))]
    return {payload[0:4]} | {payload[i : i + 4] for i in range(8, len(payload) - 3, 4)}


def _text_kind(head: bytes) -> str | None:
    if b"\0" in head:
        return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in text:
        return "svg"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "html"
    if text.startswith((b"<?xml", b"<!doctype")):
        return "xml"
    return None


def sniff_image_type(source: Path | bytes) -> str | None:
    """`jpeg`, `png`, `gif`, `webp`, `bmp`, `tiff`, `avif`, `heic`, `svg`, `html`, `xml`, `pdf`,
    `postscript`, a video kind, or None when the bytes are none of these (or empty)."""
    head = read_head(source)
    if not head:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    brands = ftyp_brands(head)
    if brands is not None:
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIF_BRANDS:
            return "heic"
        return sniff_video(head)
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "postscript"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return _text_kind(head)


def sniff_video(source: Path | bytes) -> str | None:
    """`mp4`, `quicktime` or `webm` from the container's magic bytes; None otherwise (an HTML
    error page, an image, a HEIF still, garbage)."""
    head = read_head(source)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    brands = ftyp_brands(head)
    if brands is None:
        return None
    if brands & (_HEIF_BRANDS | _AVIF_BRANDS) and not brands & _VIDEO_BRANDS:
        return None  # a HEIF/AVIF still image
    if b"qt  " in brands and not brands & _VIDEO_BRANDS:
        return "quicktime"
    return "mp4"


_M4A_BRANDS = {b"M4A ", b"M4B ", b"mp42", b"isom", b"iso2", b"mp41", b"dash", b"3gp4", b"3gp5", b"3gp6"}


def sniff_audio(source: Path | bytes) -> str | None:
    """`mp3` (an ID3 tag or an MPEG layer III frame), `wav` (RIFF/WAVE), `m4a` (an ISO BMFF file
    of an audio or general brand: whether it holds sound is for the media check to say) or `aac`
    (an ADTS frame); None otherwise."""
    head = read_head(source)
    if head.startswith(b"ID3"):
        return "mp3"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # sync, layer 00: ADTS
            return "aac"
        if head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 0x3 == 0x1:  # sync, layer III
            return "mp3"
    brands = ftyp_brands(head)
    if brands is not None and brands & _M4A_BRANDS and not brands & (_HEIF_BRANDS | _AVIF_BRANDS):
        return "m4a"
    return None


def describe(kind: str | None) -> str:
    if kind is None:
        return "not a recognizable file"
    return DESCRIPTIONS.get(kind, kind.upper())
