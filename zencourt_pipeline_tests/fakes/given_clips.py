"""Clips the web app might give (issue 14 point 5), made with ffmpeg: good ones in several shapes,
and the bad kinds (audio only, truncated, too long, not a video)."""

from __future__ import annotations

from pathlib import Path

from zencourt_pipeline.media.ffmpeg import run_ffmpeg


def video_clip(path: Path, *, seconds: float = 4.0, size: str = "320x240", fps: int = 25, audio: bool = True,
               colors: tuple[str, ...] | None = None) -> Path:  # fmt: skip
    """An H.264 MP4 (or VP9 WebM for a `.webm` path), with an AAC/Opus tone when `audio`; `colors`:
    solid colours one second each (in place of the test pattern), to see where a trim starts."""
    if colors:
        seconds = float(len(colors))
        graph = ";".join(f"color=c={c}:s={size}:r={fps}:d=1[c{i}]" for i, c in enumerate(colors))
        graph += ";" + "".join(f"[c{i}]" for i in range(len(colors))) + f"concat=n={len(colors)}:v=1:a=0[v]"
    else:
        graph = f"testsrc2=s={size}:r={fps}:d={seconds:g}[v]"
    if audio:
        graph += f";sine=f=440:d={seconds:g}[a]"
    maps = ["-map", "[v]"] + (["-map", "[a]"] if audio else [])
    webm = path.suffix == ".webm"
    video_codec = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"] if webm else [
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]  # fmt: skip
    audio_codec = (["-c:a", "libopus"] if webm else ["-c:a", "aac"]) if audio else []
    run_ffmpeg(["-filter_complex", graph, *maps, *video_codec, *audio_codec, str(path)])
    return path


def audio_only(path: Path, seconds: float = 3.0) -> Path:
    """An AAC tone in an MP4 (`.m4a`) container: a media file without a video stream."""
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=d={seconds:g}", "-c:a", "aac", str(path)])
    return path


def truncated(path: Path, source: Path) -> Path:
    """The first half of `source` (its `moov` at the end: the index is lost)."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def long_clip(path: Path, seconds: float) -> Path:
    """A tiny, long clip (stream-copied still frames): for the source length bound."""
    run_ffmpeg(["-f", "lavfi", "-i", f"color=c=gray:s=64x48:r=1:d={seconds:g}", "-c:v", "libx264", "-preset",
                "ultrafast", "-pix_fmt", "yuv420p", str(path)])  # fmt: skip
    return path
