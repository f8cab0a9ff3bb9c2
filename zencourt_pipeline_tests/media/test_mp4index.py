"""The one MP4 box walker: box headers (32-bit, 64-bit, to-the-end sizes), the top-level walk of a
file, and what makes a file an incomplete MP4 (a leading ftyp box's brands: net/test_sniff.py)."""

from __future__ import annotations

import io
import struct

import pytest

from zencourt_pipeline.media.mp4index import (
    Box,
    BoxError,
    box_header,
    file_boxes,
    iter_boxes,
    mp4_problem,
    read_video_index,
)
from zencourt_pipeline_tests.fakes.server import sample_mp4


@pytest.fixture(scope="module")
def sample_clip():
    return sample_mp4(320, 240, seconds=1.0)


def _box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def test_box_headers():
    assert box_header(_box(b"free", bytes(4)), 0, 12) == Box(b"free", 0, 8, 12, 12)
    large = struct.pack(">I4sQ", 1, b"mdat", 32)
    assert box_header(large, 100, 1000) == Box(b"mdat", 100, 16, 32, 132)
    assert box_header(struct.pack(">I4s", 0, b"mdat"), 40, 500).size == 500  # to the end
    for head, problem in [(b"\x00\x00", "truncated"), (large[:12], "truncated"), (struct.pack(">I4s", 5, b"free"), "invalid")]:
        with pytest.raises(BoxError, match=problem):
            box_header(head, 0, 100)


def test_iter_boxes_stops_at_a_box_that_does_not_fit():
    data = _box(b"free", b"ab") + _box(b"skip") + struct.pack(">I4s", 64, b"mdat")
    assert list(iter_boxes(data, 0, len(data))) == [(b"free", 8, 10), (b"skip", 18, 18)]


def test_file_boxes_walks_the_top_level(sample_clip):
    with open(sample_clip, "rb") as fh:
        boxes = list(file_boxes(fh, sample_clip.stat().st_size))
    assert boxes[0].kind == b"ftyp" and b"moov" in {box.kind for box in boxes}
    assert boxes[-1].end == sample_clip.stat().st_size
    assert all(a.end == b.offset for a, b in zip(boxes, boxes[1:], strict=False))
    stream = io.BytesIO(FTYP + struct.pack(">I4s", 500, b"mdat"))
    assert [(box.kind, box.end) for box in file_boxes(stream, len(FTYP) + 8)] == [(b"ftyp", 24), (b"mdat", 524)]


def test_real_mp4_is_complete(sample_clip):
    assert mp4_problem(sample_clip) is None
    assert read_video_index(sample_clip).sample_count == 30


def test_truncated_mp4_is_detected(sample_clip, tmp_path):
    data = sample_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated" in mp4_problem(cut)


def test_non_mp4_bytes_are_detected(tmp_path):
    html = tmp_path / "page.mp4"
    html.write_bytes(b"<html><body>Access Denied</body></html>")
    assert "ftyp" in mp4_problem(html)
    header_only = tmp_path / "header.mp4"
    header_only.write_bytes(FTYP)
    assert "moov" in mp4_problem(header_only)
    tiny = tmp_path / "tiny.mp4"
    tiny.write_bytes(FTYP[:10])
    assert "too small" in mp4_problem(tiny)
    bad_size = tmp_path / "bad.mp4"
    bad_size.write_bytes(FTYP + struct.pack(">I4s", 3, b"moov"))
    assert "invalid box size at byte 24" == mp4_problem(bad_size)
