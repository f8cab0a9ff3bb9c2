"""Ken Burns motion for the offline `local` clip generator: a still photo becomes a smooth clip.

Frames are cut with float (sub-pixel) crop boxes by Pillow from a once-reduced copy of the
photo, in a small thread pool, and piped as raw RGB to a single libx264 ffmpeg process.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import tempfile
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffargs import mp4_output
from zencourt_pipeline.media.ffmpeg import VideoInfo, ffmpeg_exe, probe
from zencourt_pipeline.media.photos import load_rgb, upright_size

OVERSAMPLE_MIN = 1.0  # reduced photo is at least output resolution at the widest crop...
OVERSAMPLE_MAX = 1.3  # ...and at most this much above it


@dataclass(frozen=True)
class Motion:
    """Zoom (1.0 = the crop that just covers the output aspect) and crop centre (fractions 0..1)."""

    name: str
    zoom_start: float
    zoom_end: float
    center_start: tuple[float, float]
    center_end: tuple[float, float]


MOTIONS: dict[str, Motion] = {
    m.name: m
    for m in (
        Motion("push_in", 1.0, 1.18, (0.5, 0.5), (0.5, 0.47)),
        Motion("pull_out", 1.18, 1.0, (0.5, 0.47), (0.5, 0.5)),
        Motion("pan_right", 1.12, 1.16, (0.40, 0.5), (0.60, 0.5)),
        Motion("pan_left", 1.12, 1.16, (0.60, 0.5), (0.40, 0.5)),
        Motion("rise", 1.08, 1.14, (0.5, 0.62), (0.5, 0.40)),
    )
}

_ROOM_MOTIONS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (
        ("exterior", "facade", "front", "outside", "street", "aerial", "backyard", "yard", "garden"),
        ("pull_out", "rise"),
    ),
    (("pool", "patio", "deck", "terrace", "balcony", "view"), ("pull_out", "pan_left", "pan_right")),
    (("kitchen", "dining", "living", "family", "great", "lounge", "hallway"), ("pan_left", "pan_right")),
    (("bedroom", "bath", "bathroom", "office", "study", "closet", "nursery"), ("push_in",)),
]


def choose_motion(seed: int, room_name: str | None = None) -> Motion:
    """A named motion for the room (by keyword when one fits, else any); deterministic per seed."""
    rng = random.Random(seed)
    words = set(re.findall(r"[a-z]+", (room_name or "").lower()))
    for keywords, names in _ROOM_MOTIONS:
        if words.intersection(keywords):
            return MOTIONS[rng.choice(names)]
    return MOTIONS[rng.choice(sorted(MOTIONS))]


def ease(t: float) -> float:
    """Smoothstep: 0 -> 1 with zero speed at both ends, monotonic in between."""
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


def motion_path(motion: Motion, frames: int) -> list[tuple[float, float, float]]:
    """Per-frame (zoom, cx, cy): zoom eased geometrically, centre eased linearly."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    z0, z1 = motion.zoom_start, motion.zoom_end
    (x0, y0), (x1, y1) = motion.center_start, motion.center_end
    plan = []
    for i in range(frames):
        e = ease(i / (frames - 1)) if frames > 1 else 0.0
        plan.append((z0 * (z1 / z0) ** e, x0 + (x1 - x0) * e, y0 + (y1 - y0) * e))
    return plan


def fit_motion(motion: Motion, image_aspect: float, output_aspect: float) -> Motion:
    """Clamp zoom to >= 1 and each end's centre so its crop stays inside the photo.

    The crop at eased in-between frames then stays inside too (the bounds are convex in ease,
    the centre linear), so the photo's edge is never shown.
    """
    z0, z1 = max(1.0, motion.zoom_start), max(1.0, motion.zoom_end)
    base_w, base_h = _cover_fraction(image_aspect, output_aspect)
    return replace(
        motion,
        zoom_start=z0,
        zoom_end=z1,
        center_start=_clamp_center(motion.center_start, base_w / z0, base_h / z0),
        center_end=_clamp_center(motion.center_end, base_w / z1, base_h / z1),
    )


def render_ken_burns(
    photo: Path,
    dest: Path,
    *,
    width: int,
    height: int,
    duration_s: float,
    fps: int = 30,
    motion: Motion,
    crf: int = 20,
    preset: str = "veryfast",
) -> VideoInfo:
    """Render `photo` with `motion` to an H.264 yuv420p MP4 of round(duration_s * fps) frames, no audio."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"output size must be positive and even, got {width}x{height}")
    frames = round(duration_s * fps)
    if frames < 1 or fps <= 0:
        raise ValueError(f"duration {duration_s} s at {fps} fps gives no frames")
    photo, dest = Path(photo), Path(dest)
    src = _reduced_source(photo, motion, width, height)
    fitted = fit_motion(motion, src.width / src.height, width / height)
    boxes = [_box(src.size, width / height, z, cx, cy) for z, cx, cy in motion_path(fitted, frames)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.stem}.{uuid.uuid4().hex[:8]}.tmp.mp4"
    try:
        _encode(src, boxes, tmp, width=width, height=height, fps=fps, crf=crf, preset=preset)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return probe(dest)


def _cover_fraction(image_aspect: float, output_aspect: float) -> tuple[float, float]:
    """Size, as fractions of the photo, of the largest output-aspect crop inside it."""
    if image_aspect > output_aspect:
        return output_aspect / image_aspect, 1.0
    return 1.0, image_aspect / output_aspect


def _clamp_center(center: tuple[float, float], frac_w: float, frac_h: float) -> tuple[float, float]:
    cx, cy = center
    return (min(max(cx, frac_w / 2), 1 - frac_w / 2), min(max(cy, frac_h / 2), 1 - frac_h / 2))


def _box(
    size: tuple[int, int], output_aspect: float, zoom: float, cx: float, cy: float
) -> tuple[float, float, float, float]:
    """Float crop box in the (reduced) photo for one frame, nudged inside against float error."""
    w, h = size
    frac_w, frac_h = _cover_fraction(w / h, output_aspect)
    crop_w, crop_h = frac_w * w / zoom, frac_h * h / zoom
    left = min(max(cx * w - crop_w / 2, 0.0), w - crop_w)
    top = min(max(cy * h - crop_h / 2, 0.0), h - crop_h)
    return (left, top, left + crop_w, top + crop_h)


def _reduced_source(photo: Path, motion: Motion, width: int, height: int) -> Image.Image:
    """The photo, LANCZOS-reduced once so the widest crop is 1.0-1.3x the output resolution."""
    w, h = upright_size(photo)
    frac_w, _ = _cover_fraction(w / h, width / height)
    z_min = max(1.0, min(motion.zoom_start, motion.zoom_end))
    z_max = max(1.0, motion.zoom_start, motion.zoom_end)
    widest_crop = frac_w * w / z_min
    oversample = min(OVERSAMPLE_MAX, max(OVERSAMPLE_MIN, z_max / z_min))
    scale = width * oversample / widest_crop
    if scale >= 0.95:  # too small to gain from reducing: crop straight from the photo
        return load_rgb(photo)
    img = load_rgb(photo, min_scale=scale)  # JPEG DCT scaling does the bulk of a big reduction
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(
    src: Image.Image,
    boxes: list[tuple[float, float, float, float]],
    dest: Path,
    *,
    width: int,
    height: int,
    fps: int,
    crf: int,
    preset: str,
) -> None:
    """Resize each box in a thread pool and stream the frames, in order, to one libx264 process."""
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-an", "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        *mp4_output(dest, final=False),
    ]  # fmt: skip
    size = (width, height)

    def frame(box: tuple[float, float, float, float]) -> bytes:
        return src.resize(size, Image.Resampling.BICUBIC, box=box).tobytes()

    workers = max(1, min(4, os.cpu_count() or 2))
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kenburns") as pool:
                pending: deque = deque()
                for box in boxes:
                    pending.append(pool.submit(frame, box))
                    if len(pending) > 2 * workers:
                        proc.stdin.write(pending.popleft().result())
                while pending:
                    proc.stdin.write(pending.popleft().result())
            proc.stdin.close()
            code = proc.wait(timeout=max(120.0, 2.0 * len(boxes) / fps + 60))
        except BrokenPipeError:  # ffmpeg exited early; its log says why
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise MediaError(ErrorCode.FFMPEG_FAILED, "ffmpeg encode timed out") from exc
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if code != 0:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-6:]
            raise MediaError(ErrorCode.FFMPEG_FAILED, "ffmpeg encode failed: " + " | ".join(tail))
