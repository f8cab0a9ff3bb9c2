"""MP4 (ISO-BMFF) boxes, and the sample index of an MP4's video track (no ffmpeg run).

The package's one box walker (`box_header`, `iter_boxes`, `file_boxes`) serves `mp4_problem`
(is a download a complete MP4), `net.sniff.ftyp_brands` and `read_video_index`, what smart
rendering must know: only the `moov` box is read (plus the first video sample, for x264's
settings SEI); the result tells whether spans of the file can be stream-copied: the H.264
parameter sets (`avcC`), the track timescale, constant frame duration, where the keyframes are
and whether every GOP is closed (no frame of a GOP is displayed before its keyframe or after the
next one).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError

_MAX_MOOV = 64 * 1024 * 1024


@dataclass(frozen=True)
class VideoTrackIndex:
    codec: str  # sample entry fourcc: avc1, avc3, hev1, ...
    width: int
    height: int
    timescale: int
    sample_count: int
    frame_delta: int | None  # the one sample duration, None when durations vary (VFR)
    keyframes: tuple[int, ...]  # display indexes of the sync samples (== decode indexes when closed)
    closed_gops: bool  # every GOP displays exactly the frames [keyframe, next keyframe)
    avcc: bytes | None  # the avcC box (H.264 parameter sets), None for other codecs
    edit_ok: bool  # no edit list, or one that starts presentation at the first frame
    rotated: bool  # the track header's matrix is not the identity (a display rotation/flip)
    encoder_options: dict[str, str]  # x264's "options:" SEI of the first sample, {} when absent
    has_audio: bool = False  # the file also has an audio track

    @property
    def duration_s(self) -> float:
        return self.sample_count * (self.frame_delta or 0) / self.timescale if self.timescale else 0.0

    @property
    def fps(self) -> float:
        return self.timescale / self.frame_delta if self.frame_delta else 0.0

    @property
    def pix_fmt(self) -> str | None:
        """yuv420p / yuv422p / yuv444p (+10le etc.) from the H.264 SPS; None when unknown."""
        found = sps_format(self.avcc) if self.avcc else None
        if found is None:
            return None
        chroma, depth = found
        name = {0: "gray", 1: "yuv420p", 2: "yuv422p", 3: "yuv444p"}.get(chroma)
        if name is None:
            return None
        return name if depth == 8 else f"{name}{depth}le"

    def gops(self) -> list[tuple[int, int]]:
        """[start, end) display frame ranges of the GOPs."""
        bounds = [*self.keyframes, self.sample_count]
        return [(bounds[i], bounds[i + 1]) for i in range(len(self.keyframes))]


class _Bits:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def sps_format(avcc: bytes) -> tuple[int, int] | None:
    """(chroma_format_idc, luma bit depth) from the first SPS in an avcC box (header included)."""
    try:
        body = avcc[8:] if avcc[4:8] == b"avcC" else avcc
        if body[5] & 0x1F == 0:
            return None
        length = struct.unpack_from(">H", body, 6)[0]
        nal = body[8 : 8 + length]
        rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
        bits = _Bits(rbsp)
        profile = bits.bits(8)
        bits.bits(16)  # constraint flags, level
        bits.ue()  # seq_parameter_set_id
        if profile not in _HIGH_PROFILES:
            return 1, 8
        chroma = bits.ue()
        if chroma == 3:
            bits.bit()  # separate_colour_plane_flag
        return chroma, bits.ue() + 8
    except (IndexError, ValueError, struct.error):
        return None


# ------------------------------------------------------------------------------------ boxes


class BoxError(ValueError):
    """A box header that cannot be read: cut short, or a size smaller than the header."""


@dataclass(frozen=True)
class Box:
    kind: bytes  # the four-character type, e.g. b"moov"
    offset: int  # where its header starts
    header: int  # 8, or 16 with a 64-bit size
    size: int  # header included
    end: int  # offset + size


def box_header(head: bytes, offset: int, remaining: int) -> Box:
    """The box whose first bytes (up to 16) are `head`, `remaining` bytes before the end of its
    container (a size of 0 means "to the end"). Raises BoxError when the header is cut short or
    the size is smaller than the header. The box may still reach past the end: `Box.end`."""
    if len(head) < 8:
        raise BoxError(f"truncated box header at byte {offset}")
    size, kind = struct.unpack_from(">I4s", head)
    header = 8
    if size == 1:
        if len(head) < 16:
            raise BoxError(f"truncated box header at byte {offset}")
        size, header = struct.unpack_from(">Q", head, 8)[0], 16
    elif size == 0:
        size = remaining
    if size < header:
        raise BoxError(f"invalid box size at byte {offset}")
    return Box(kind, offset, header, size, offset + size)


def iter_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in `data[start:end]`; stops at the first
    box that cannot be read or does not fit."""
    pos = start
    while pos + 8 <= end:
        try:
            box = box_header(data[pos : min(pos + 16, end)], pos, end - pos)
        except BoxError:
            return
        if box.end > end:
            return
        yield box.kind, pos + box.header, box.end
        pos = box.end


def file_boxes(fh: BinaryIO, file_size: int) -> Iterator[Box]:
    """The top-level boxes of an open file, in order; a box reaching past `file_size` is yielded
    (the last one: the caller decides). Raises BoxError (see `box_header`)."""
    offset = 0
    while offset < file_size:
        fh.seek(offset)
        box = box_header(fh.read(16), offset, file_size - offset)
        yield box
        offset = box.end


def mp4_problem(path: Path) -> str | None:
    """Why `path` is not a complete MP4 (None if it looks complete).

    Walks the top-level ISO-BMFF boxes: the first must be `ftyp`, every box must fit inside the
    file (a truncated download leaves the last box short), and a `moov` box must be present.
    """
    size = Path(path).stat().st_size
    if size < 16:
        return f"{size} bytes is too small for an MP4"
    seen: list[bytes] = []
    with open(path, "rb") as fh:
        try:
            for box in file_boxes(fh, size):
                if not seen and box.kind != b"ftyp":
                    return "no ftyp box at the start (not an MP4)"
                if box.end > size:
                    return (
                        f"box {box.kind.decode('latin-1')!r} at byte {box.offset} needs {box.size} bytes, "
                        f"only {size - box.offset} present (truncated)"
                    )
                seen.append(box.kind)
        except BoxError as exc:
            return str(exc)
    if b"moov" not in seen:
        return "no moov box (incomplete MP4)"
    return None


# ------------------------------------------------------------------------------ video index


def _find(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in iter_boxes(data, start, end):
        if k == kind:
            return s, e
    return None


def _read_moov(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        file_size = fh.tell()
        try:
            for box in file_boxes(fh, file_size):
                if box.kind == b"moov":
                    if box.size > _MAX_MOOV or box.end > file_size:
                        break
                    fh.seek(box.offset + box.header)
                    return fh.read(box.size - box.header)
        except BoxError:
            pass
    raise MediaError(ErrorCode.INVALID_INPUT, f"{path.name} has no readable moov box")


def _full_box(data: bytes, start: int) -> tuple[int, int]:
    """(version, first byte after version/flags) of a FullBox payload."""
    return data[start], start + 4


def _trak(moov: bytes, handler: bytes) -> tuple[int, int] | None:
    for kind, s, e in iter_boxes(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        mdia = _find(moov, s, e, b"mdia")
        if mdia is None:
            continue
        hdlr = _find(moov, *mdia, b"hdlr")
        if hdlr is not None and moov[hdlr[0] + 8 : hdlr[0] + 12] == handler:
            return s, e
    return None


def _x264_options(sample: bytes) -> dict[str, str]:
    at = sample.find(b"x264 - core")
    if at < 0:
        return {}
    end = sample.find(b"\x00", at)
    text = sample[at : end if end > 0 else len(sample)].decode("latin-1")
    _, _, options = text.partition("options: ")
    pairs = {}
    for item in options.split():
        key, sep, value = item.partition("=")
        if sep:
            pairs[key] = value
    return pairs


def read_video_index(path: Path) -> VideoTrackIndex:
    """The video track index of the MP4 at `path`; MediaError(INVALID_INPUT) if there is none."""
    path = Path(path)
    moov = _read_moov(path)
    trak = _trak(moov, b"vide")
    if trak is None:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{path.name} has no video track")
    edit_ok = True
    rotated = False
    tkhd = _find(moov, *trak, b"tkhd")
    if tkhd is not None:
        version, p = _full_box(moov, tkhd[0])
        matrix_at = p + (32 if version == 1 else 20) + 16
        matrix = struct.unpack_from(">9i", moov, matrix_at)
        rotated = matrix != (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mdia = _find(moov, *trak, b"mdia")
    mdhd = _find(moov, *mdia, b"mdhd")
    minf = _find(moov, *mdia, b"minf")
    stbl = _find(moov, *minf, b"stbl") if minf else None
    if mdhd is None or stbl is None:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{path.name} has an incomplete video track")
    version, p = _full_box(moov, mdhd[0])
    timescale = struct.unpack_from(">I", moov, p + (16 if version == 1 else 8))[0]

    boxes = {kind: (s, e) for kind, s, e in iter_boxes(moov, *stbl)}
    # Sample entry (avc1 etc.): 78 bytes of VisualSampleEntry fields, then child boxes (avcC ...).
    codec, width, height, avcc = "", 0, 0, None
    if b"stsd" in boxes:
        s, e = boxes[b"stsd"]
        for kind, es, ee in iter_boxes(moov, s + 8, e):
            codec = kind.decode("latin-1")
            width, height = struct.unpack_from(">HH", moov, es + 24)
            found = _find(moov, es + 78, ee, b"avcC")
            if found is not None:
                avcc = moov[found[0] - 8 : found[1]]
            break

    deltas: list[int] = []
    if b"stts" in boxes:
        s, _ = boxes[b"stts"]
        count = struct.unpack_from(">I", moov, s + 4)[0]
        for i in range(count):
            n, delta = struct.unpack_from(">II", moov, s + 8 + 8 * i)
            deltas.extend([delta] * n)
    sample_count = len(deltas)
    sizes: list[int] = []
    if b"stsz" in boxes:
        s, _ = boxes[b"stsz"]
        uniform, n = struct.unpack_from(">II", moov, s + 4)
        sizes = [uniform] * n if uniform else list(struct.unpack_from(f">{n}I", moov, s + 12))
    offsets: list[int] = []
    if b"stco" in boxes:
        s, _ = boxes[b"stco"]
        n = struct.unpack_from(">I", moov, s + 4)[0]
        offsets = list(struct.unpack_from(f">{n}I", moov, s + 8))
    elif b"co64" in boxes:
        s, _ = boxes[b"co64"]
        n = struct.unpack_from(">I", moov, s + 4)[0]
        offsets = list(struct.unpack_from(f">{n}Q", moov, s + 8))

    composition = [0] * sample_count
    if b"ctts" in boxes:
        s, _ = boxes[b"ctts"]
        version, p = _full_box(moov, s)
        count = struct.unpack_from(">I", moov, p)[0]
        i = 0
        fmt = ">Ii" if version == 1 else ">II"
        for k in range(count):
            n, off = struct.unpack_from(fmt, moov, p + 4 + 8 * k)
            if off >= 2**31:
                off -= 2**32
            for _ in range(n):
                if i < sample_count:
                    composition[i] = off
                    i += 1

    if b"stss" in boxes:
        s, _ = boxes[b"stss"]
        n = struct.unpack_from(">I", moov, s + 4)[0]
        sync = [x - 1 for x in struct.unpack_from(f">{n}I", moov, s + 8)]
    else:
        sync = list(range(sample_count))  # every sample is a sync sample

    frame_delta = deltas[0] if deltas and all(d == deltas[0] for d in deltas) else None
    keyframes: tuple[int, ...] = ()
    closed = False
    if sample_count and frame_delta and sync and sync[0] == 0:
        dts = [i * frame_delta for i in range(sample_count)]
        pts = [d + c for d, c in zip(dts, composition, strict=True)]
        first = min(pts)
        display = [(p - first) / frame_delta for p in pts]
        closed = sorted(display) == list(range(sample_count))
        bounds = [*sync, sample_count]
        for g in range(len(sync)):
            members = display[bounds[g] : bounds[g + 1]]
            if not members or min(members) != bounds[g] or max(members) != bounds[g + 1] - 1:
                closed = False
                break
        keyframes = tuple(sync)
        edts = _find(moov, *trak, b"edts")
        if edts is not None:
            elst = _find(moov, *edts, b"elst")
            if elst is not None:
                version, p = _full_box(moov, elst[0])
                count = struct.unpack_from(">I", moov, p)[0]
                if count != 1:
                    edit_ok = False
                else:
                    media_time = struct.unpack_from(
                        ">q" if version == 1 else ">i", moov, p + (12 if version == 1 else 8)
                    )[0]
                    edit_ok = media_time in (first, -1) or (media_time == 0 and first == 0)

    options: dict[str, str] = {}
    if sizes and offsets:
        with open(path, "rb") as fh:
            fh.seek(offsets[0])
            options = _x264_options(fh.read(min(sizes[0], 1 << 20)))
    return VideoTrackIndex(
        codec=codec,
        width=width,
        height=height,
        timescale=timescale,
        sample_count=sample_count,
        frame_delta=frame_delta,
        keyframes=keyframes,
        closed_gops=closed,
        avcc=avcc,
        edit_ok=edit_ok,
        rotated=rotated,
        encoder_options=options,
        has_audio=_trak(moov, b"soun") is not None,
    )
