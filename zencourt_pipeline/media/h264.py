"""H.264 bitstream facts read without a decoder: the chroma format and bit depth of an avcC's
first SPS, and x264's options SEI (the encoder settings written into the first sample)."""

from __future__ import annotations

import struct


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


def x264_options(sample: bytes) -> dict[str, str]:
    """x264's "options:" SEI text of a sample as key=value pairs ({} when absent)."""
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
