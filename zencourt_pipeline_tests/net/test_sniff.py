"""net/sniff.py's reading of a leading ftyp box (through media.mp4index's box walker), and what a
narration file is from its first bytes."""

from __future__ import annotations

import struct

import pytest

from zencourt_pipeline.net.sniff import ftyp_brands, sniff_audio, sniff_video

FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def test_ftyp_brands():
    assert ftyp_brands(FTYP) == {b"isom", b"iso2"}
    assert ftyp_brands(FTYP[:16]) == {b"isom"}  # only the major brand fits
    assert ftyp_brands(b"<html>not a box</html>") is None
    assert ftyp_brands(struct.pack(">I4s", 16, b"moov") + bytes(8)) is None
    large = struct.pack(">I4sQ", 1, b"ftyp", 24) + b"mp42\x00\x00\x00\x00"  # a 64-bit size
    assert ftyp_brands(large) == {b"mp42"} and sniff_video(large) == "mp4"


M4A = b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isommp42"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3"),  # an ID3 tag first
        (b"\xff\xfb\x90\x64" + bytes(8), "mp3"),  # an MPEG-1 layer III frame
        (b"\xff\xf1\x50\x80" + bytes(8), "aac"),  # an ADTS frame
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (M4A, "m4a"),
        (FTYP, "m4a"),  # a general ISO brand: the media check tells sound from video
        (HEIC, None),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", None),
        (b"<!doctype html><html>", None),
        (b"\xff\xd8\xff\xe0", None),  # a JPEG
        (b"", None),
    ],
)
def test_sniff_audio(head, kind):
    assert sniff_audio(head) == kind
