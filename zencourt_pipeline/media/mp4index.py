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
from zencourt_pipeline.media.h264 import sps_format, x264_options

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


def read_video_index(path: Path) -> VideoTrackIndex:
    """The video track index of the MP4 at `path`; MediaError(INVALID_INPUT) if there is none."""
    path = Path(path)
    moov = _read_moov(path)
    trak = _trak(moov, b"vide")
    if trak is None:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{path.name} has no video track")
    mdia = _find(moov, *trak, b"mdia")
    mdhd = _find(moov, *mdia, b"mdhd")
    minf = _find(moov, *mdia, b"minf")
    stbl = _find(moov, *minf, b"stbl") if minf else None
    if mdhd is None or stbl is None:
        raise MediaError(ErrorCode.INVALID_INPUT, f"{path.name} has an incomplete video track")
    version, p = _full_box(moov, mdhd[0])
    timescale = struct.unpack_from(">I", moov, p + (16 if version == 1 else 8))[0]
    boxes = {kind: (s, e) for kind, s, e in iter_boxes(moov, *stbl)}
    codec, width, height, avcc = _sample_entry(moov, boxes)
    deltas = _sample_deltas(moov, boxes)
    sample_count = len(deltas)
    frame_delta = deltas[0] if deltas and all(d == deltas[0] for d in deltas) else None
    sync = _sync_samples(moov, boxes, sample_count)
    keyframes: tuple[int, ...] = ()
    closed, edit_ok = False, True
    if sample_count and frame_delta and sync and sync[0] == 0:
        pts = _presentation_times(moov, boxes, frame_delta, sample_count)
        first = min(pts)
        display = [(t - first) / frame_delta for t in pts]
        closed = _closed_gops(display, sync, sample_count)
        keyframes = tuple(sync)
        edit_ok = _edit_ok(moov, trak, first)
    return VideoTrackIndex(
        codec=codec, width=width, height=height, timescale=timescale, sample_count=sample_count,
        frame_delta=frame_delta, keyframes=keyframes, closed_gops=closed, avcc=avcc, edit_ok=edit_ok,
        rotated=_rotated(moov, trak), encoder_options=_first_sample_options(path, moov, boxes),
        has_audio=_trak(moov, b"soun") is not None,
    )  # fmt: skip


def _rotated(moov: bytes, trak: tuple[int, int]) -> bool:
    """Whether the track header's matrix is not the identity (a display rotation or flip)."""
    tkhd = _find(moov, *trak, b"tkhd")
    if tkhd is None:
        return False
    version, p = _full_box(moov, tkhd[0])
    matrix = struct.unpack_from(">9i", moov, p + (32 if version == 1 else 20) + 16)
    return matrix != (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _sample_entry(moov: bytes, boxes: dict[bytes, tuple[int, int]]) -> tuple[str, int, int, bytes | None]:
    """(fourcc, width, height, avcC box) of the first sample entry: 78 bytes of VisualSampleEntry
    fields, then child boxes (avcC ...)."""
    if b"stsd" not in boxes:
        return "", 0, 0, None
    s, e = boxes[b"stsd"]
    for kind, es, ee in iter_boxes(moov, s + 8, e):
        width, height = struct.unpack_from(">HH", moov, es + 24)
        found = _find(moov, es + 78, ee, b"avcC")
        return kind.decode("latin-1"), width, height, moov[found[0] - 8 : found[1]] if found is not None else None
    return "", 0, 0, None


def _sample_deltas(moov: bytes, boxes: dict[bytes, tuple[int, int]]) -> list[int]:
    """Each sample's duration (stts)."""
    deltas: list[int] = []
    if b"stts" in boxes:
        s, _ = boxes[b"stts"]
        count = struct.unpack_from(">I", moov, s + 4)[0]
        for i in range(count):
            n, delta = struct.unpack_from(">II", moov, s + 8 + 8 * i)
            deltas.extend([delta] * n)
    return deltas


def _first_sample_options(path: Path, moov: bytes, boxes: dict[bytes, tuple[int, int]]) -> dict[str, str]:
    """x264's options SEI of the first sample (its size from stsz, its offset from stco/co64)."""
    size = offset = None
    if b"stsz" in boxes:
        s, _ = boxes[b"stsz"]
        uniform, n = struct.unpack_from(">II", moov, s + 4)
        size = uniform or (struct.unpack_from(">I", moov, s + 12)[0] if n else None)
    for kind, fmt in ((b"stco", ">I"), (b"co64", ">Q")):
        if kind in boxes:
            s, _ = boxes[kind]
            if struct.unpack_from(">I", moov, s + 4)[0]:
                offset = struct.unpack_from(fmt, moov, s + 8)[0]
            break
    if not size or offset is None:
        return {}
    with open(path, "rb") as fh:
        fh.seek(offset)
        return x264_options(fh.read(min(size, 1 << 20)))


def _presentation_times(moov: bytes, boxes: dict[bytes, tuple[int, int]], frame_delta: int, n: int) -> list[int]:
    """Each sample's presentation time: its decode time plus its composition offset (ctts)."""
    composition = [0] * n
    if b"ctts" in boxes:
        version, p = _full_box(moov, boxes[b"ctts"][0])
        count = struct.unpack_from(">I", moov, p)[0]
        fmt, i = (">Ii" if version == 1 else ">II"), 0
        for k in range(count):
            run, off = struct.unpack_from(fmt, moov, p + 4 + 8 * k)
            off = off - 2**32 if off >= 2**31 else off
            for _ in range(run):
                if i < n:
                    composition[i] = off
                    i += 1
    return [i * frame_delta + c for i, c in enumerate(composition)]


def _sync_samples(moov: bytes, boxes: dict[bytes, tuple[int, int]], n: int) -> list[int]:
    """0-based indexes of the sync samples (stss; without one every sample is a sync sample)."""
    if b"stss" not in boxes:
        return list(range(n))
    s, _ = boxes[b"stss"]
    count = struct.unpack_from(">I", moov, s + 4)[0]
    return [x - 1 for x in struct.unpack_from(f">{count}I", moov, s + 8)]


def _closed_gops(display: list[float], sync: list[int], n: int) -> bool:
    """Whether every GOP displays exactly the frames [its keyframe, the next keyframe)."""
    if sorted(display) != list(range(n)):
        return False
    bounds = [*sync, n]
    for g in range(len(sync)):
        members = display[bounds[g] : bounds[g + 1]]
        if not members or min(members) != bounds[g] or max(members) != bounds[g + 1] - 1:
            return False
    return True


def _edit_ok(moov: bytes, trak: tuple[int, int], first: int) -> bool:
    """No edit list, or one entry that starts presentation at the first frame."""
    edts = _find(moov, *trak, b"edts")
    elst = _find(moov, *edts, b"elst") if edts is not None else None
    if elst is None:
        return True
    version, p = _full_box(moov, elst[0])
    if struct.unpack_from(">I", moov, p)[0] != 1:
        return False
    media_time = struct.unpack_from(">q" if version == 1 else ">i", moov, p + (12 if version == 1 else 8))[0]
    return media_time in (first, -1) or (media_time == 0 and first == 0)
