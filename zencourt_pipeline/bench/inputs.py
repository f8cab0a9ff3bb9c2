"""Bench inputs, generated from ffmpeg's lavfi sources (no downloads): camera-like clips and a photo.

The clips stand in for what providers return: 1080p30 H.264 tagged BT.709, 5 s, with motion and
fine detail (pans over detailed stills, animated patterns, light sensor-like noise), encoded at a
high bitrate like a camera would (x264 ultrafast, CRF 18).
"""

from __future__ import annotations

from pathlib import Path

from zencourt_pipeline.media.ffmpeg import run_ffmpeg

# the bench listing: its rooms (the captions) and its title
ROOMS = ["Living room", "Kitchen", "Primary bedroom", "Bathroom", "Backyard", "Home office"]
TITLE = "12 Harbour View Road, Seaside Heights"
_TAG = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"


def _pan(still: str, w: int, h: int, frames: int) -> str:
    """A still 25% larger than the frame, panned diagonally across over the clip."""
    big_w, big_h = (w * 5 // 4) // 2 * 2, (h * 5 // 4) // 2 * 2
    return (
        f"{still},scale={big_w}:{big_h}:flags=bicubic,noise=alls=8,"
        f"loop=loop={frames - 1}:size=1,setpts=N/30/TB,"
        f"crop={w}:{h}:x='({big_w}-{w})*n/{frames}':y='({big_h}-{h})*n/{frames}'"
    )


def source_graphs(width: int, height: int, seconds: float) -> list[str]:
    """Six lavfi graphs of `seconds` of 30 fps video at width x height, all different."""
    n = round(seconds * 30)
    small = f"{max(width // 4, 16)}x{max(height // 4, 16)}"
    return [
        _pan(f"testsrc2=s={small}:r=1:d=1", width, height, n),
        _pan(
            f"mandelbrot=s={width // 2}x{height // 2}:r=1:start_scale=0.6,trim=end_frame=1", width, height, n
        ),
        f"testsrc2=s={width}x{height}:r=30:d={seconds},noise=alls=2:allf=t",
        _pan(f"cellauto=s={small}:rule=30:full=1,trim=end_frame=1,gblur=sigma=0.7", width, height, n),
        f"smptehdbars=s={width}x{height}:r=30:d={seconds},scroll=h=0.004:v=0.002,noise=alls=2:allf=t",
        f"life=s={small}:r=30:mold=10:ratio=0.3:life_color=#d0b090:death_color=#203040,"
        f"scale={width}:{height}:flags=bicubic,trim=duration={seconds}",
    ]


def make_sources(directory: Path, *, width: int, height: int, seconds: float) -> list[Path]:
    """Write the six source clips (H.264 High, BT.709-tagged, no audio) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, graph in enumerate(source_graphs(width, height, seconds)):
        path = directory / f"source_{i}.mp4"
        args = [
            "-f", "lavfi", "-i", f"{graph},format=yuv420p,{_TAG}",
            "-frames:v", str(round(seconds * 30)), "-r", "30",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
            "-an", str(path),
        ]  # fmt: skip
        run_ffmpeg(args, timeout=600)
        paths.append(path)
    return paths


def make_photo(path: Path, *, width: int, height: int) -> Path:
    """A detailed JPEG photo (what the local generator animates)."""
    small = f"{max(width // 8, 16)}x{max(height // 8, 16)}"
    graph = f"testsrc2=s={small}:r=1:d=1,scale={width}:{height}:flags=bicubic,noise=alls=10,format=yuvj420p"
    run_ffmpeg(
        ["-f", "lavfi", "-i", graph, "-frames:v", "1", "-q:v", "3", "-update", "1", str(path)], timeout=300
    )
    return path
