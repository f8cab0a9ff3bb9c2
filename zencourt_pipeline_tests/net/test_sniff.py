"""net/sniff.py's reading of a leading ftyp box (through media.mp4index's box walker)."""

from __future__ import annotations

import struct

from zencourt_pipeline.net.sniff import ftyp_brands, sniff_video

FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def test_ftyp_brands():
    assert ftyp_brands(FTYP) == {b"isom", b"iso2"}
    assert ftyp_brands(FTYP[:16]) == {b"isom"}  # only the major brand fits
    assert ftyp_brands(b"<html>not a box</html>") is None
    assert ftyp_brands(struct.pack(">I4s", 16, b"moov") + bytes(8)) is None
    large = struct.pack(">I4sQ", 1, b"ftyp", 24) + b"mp42\x00\x00\x00\x00"  # a 64-bit size
    assert ftyp_brands(large) == {b"mp42"} and sniff_video(large) == "mp4"
