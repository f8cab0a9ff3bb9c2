"""The smallest pieces of every ffmpeg argument list: numbers as filter graphs want them and the
mp4 muxer's arguments. Pure; `graphs` (video) and `mix` (audio) both build on them."""

from __future__ import annotations

from pathlib import Path


def mp4_output(dest: Path, *, faststart: bool = True, final: bool = True) -> list[str]:
    """The mp4 muxer's arguments for every encoded output: no edit lists (`edts/elst`, refused by
    Instagram's Graph API), `moov` before `mdat` (`faststart`), then `dest`. A `final` output (what
    is published) gets negative composition offsets (ctts v1) instead of the edit list, so its first
    frame is still presented at 0 despite the B-frame delay; clips and pieces that smart rendering
    splices keep positive offsets (their first frame at the delay, as the splicer expects)."""
    flags = "+".join(["", *(["faststart"] if faststart else []), *(["negative_cts_offsets"] if final else [])])
    return ["-use_editlist", "0", *(["-movflags", flags] if flags else []), "-f", "mp4", str(dest)]


def fmt(value: float) -> str:
    """A number for a filter graph: fixed point, no exponent, no trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
