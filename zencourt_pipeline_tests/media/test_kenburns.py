"""Ken Burns clips rendered with the real ffmpeg: format, frame count, motion plan, measured smoothness."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe
from zencourt_pipeline.media.kenburns import (
    MOTIONS,
    Motion,
    choose_motion,
    fit_motion,
    motion_path,
    render_ken_burns,
)

JITTER_LIMIT_PX = 0.35


def _textured(path: Path, w: int, h: int, seed: int = 0, marker: bool = False) -> Path:
    """A blotchy, grainy photo; with `marker`, a bright Gaussian dot at its centre."""
    rng = np.random.default_rng(seed)
    low = rng.normal(0, 1, (h // 6, w // 6)).astype(np.float32)
    tex = np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC))
    gray = 70 + 14 * tex + rng.normal(0, 6, (h, w))
    if marker:
        y, x = np.mgrid[0:h, 0:w]
        gray = gray + 170 * np.exp(-((x - w / 2) ** 2 + (y - h / 2) ** 2) / (2 * 4.0**2))
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        rgb = np.stack([gray * 1.2, gray, gray * 0.8 + 30 * (np.arange(w) / w)[None, :]], axis=2)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("kb_photos")
    return {
        "landscape": _textured(d / "landscape.jpg", 1600, 1200, seed=1),
        "portrait": _textured(d / "portrait.jpg", 1200, 1600, seed=2),
        "marker": _textured(d / "marker.jpg", 960, 720, seed=3, marker=True),
    }


def _top_level_boxes(path: Path) -> list[bytes]:
    data, kinds, pos = path.read_bytes(), [], 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        kinds.append(kind)
        if size < 8:
            break
        pos += size
    return kinds


def _gray_frames(video: Path, w: int, h: int) -> np.ndarray:
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w).astype(np.float64)


def _marker_centroid(frame: np.ndarray, r: int = 9) -> tuple[float, float]:
    """Sub-pixel centre of the bright dot: background-subtracted intensity centroid near the peak."""
    smooth = np.asarray(Image.fromarray(frame.astype(np.uint8)).filter(ImageFilter.BoxBlur(2)))
    py, px = np.unravel_index(np.argmax(smooth), smooth.shape)
    win = frame[py - r : py + r + 1, px - r : px + r + 1]
    weight = np.clip(win - np.median(win) - 10, 0, None)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return px + (weight * xx).sum() / weight.sum(), py + (weight * yy).sum() / weight.sum()


def _jitter(video: Path, w: int, h: int) -> tuple[float, float]:
    """(RMS of the frame-to-frame second difference of the marker position, total x travel), in px."""
    track = np.array([_marker_centroid(f) for f in _gray_frames(video, w, h)])
    second = np.diff(track, n=2, axis=0)
    return float(np.sqrt((second**2).sum(axis=1).mean())), float(abs(track[-1, 0] - track[0, 0]))


@pytest.mark.parametrize(
    ("photo", "width", "height", "duration"),
    [("landscape", 1280, 720, 1.5), ("landscape", 720, 1280, 1.5), ("portrait", 1280, 720, 1.1)],
    ids=["landscape-720p", "vertical-720x1280", "portrait-photo-into-landscape"],
)
def test_render_format_and_exact_frames(photos, tmp_path, photo, width, height, duration):
    dest = tmp_path / "clips" / "clip.mp4"
    info = render_ken_burns(
        photos[photo], dest, width=width, height=height, duration_s=duration, motion=MOTIONS["pan_right"]
    )
    counted = probe(dest, count_frames=True)
    assert (counted.codec, counted.pix_fmt) == ("h264", "yuv420p")
    assert (counted.width, counted.height) == (width, height) == (info.width, info.height)
    assert counted.fps == pytest.approx(30.0)
    assert counted.frame_count == round(duration * 30)
    assert not counted.has_audio
    assert [p.name for p in dest.parent.iterdir()] == ["clip.mp4"], "temp file left behind"
    boxes = _top_level_boxes(dest)
    assert boxes.index(b"moov") < boxes.index(b"mdat"), f"not faststart: {boxes}"


def test_render_replaces_existing_and_rejects_bad_args(photos, tmp_path):
    dest = tmp_path / "clip.mp4"
    dest.write_bytes(b"old")
    render_ken_burns(photos["landscape"], dest, width=320, height=180, duration_s=0.5, motion=MOTIONS["rise"])
    assert probe(dest).codec == "h264"
    with pytest.raises(ValueError):
        render_ken_burns(
            photos["landscape"], dest, width=321, height=180, duration_s=1, motion=MOTIONS["rise"]
        )
    with pytest.raises(ValueError):
        render_ken_burns(
            photos["landscape"], dest, width=320, height=180, duration_s=0, motion=MOTIONS["rise"]
        )


def test_encoder_failure_is_media_error_and_leaves_nothing(photos, tmp_path):
    dest = tmp_path / "out" / "clip.mp4"
    with pytest.raises(MediaError) as err:
        render_ken_burns(
            photos["landscape"], dest, width=320, height=180, duration_s=1, motion=MOTIONS["push_in"],
            preset="no-such-preset",
        )  # fmt: skip
    assert err.value.code == "FFMPEG_FAILED"
    assert list(dest.parent.iterdir()) == []


def test_choose_motion_is_deterministic_and_room_aware():
    assert all(choose_motion(s) == choose_motion(s) for s in range(20))
    assert all(choose_motion(s, "Kitchen") == choose_motion(s, "Kitchen") for s in range(20))
    assert len({choose_motion(s).name for s in range(40)}) >= 4
    assert {choose_motion(s, "Exterior").name for s in range(40)} <= {"pull_out", "rise"}
    assert {choose_motion(s, "Front Facade").name for s in range(40)} <= {"pull_out", "rise"}
    assert {choose_motion(s, "Open-plan kitchen").name for s in range(40)} == {"pan_left", "pan_right"}
    assert all(isinstance(choose_motion(s, "Mystery Nook"), Motion) for s in range(5))


@pytest.mark.parametrize("name", sorted(MOTIONS))
def test_motion_plan_is_monotonic_and_gentle(name):
    motion = MOTIONS[name]
    frames = 150
    plan = np.array(motion_path(motion, frames))
    assert plan[0] == pytest.approx([motion.zoom_start, *motion.center_start])
    assert plan[-1] == pytest.approx([motion.zoom_end, *motion.center_end])
    assert 1.0 <= plan[:, 0].min() and plan[:, 0].max() <= 1.2
    steps = np.diff(plan, axis=0)
    for axis in range(3):
        assert (steps[:, axis] >= -1e-12).all() or (steps[:, axis] <= 1e-12).all(), f"axis {axis} reverses"
        span = abs(plan[-1, axis] - plan[0, axis])
        # smoothstep peaks at 1.5x the mean speed; geometric zoom adds up to ~10%
        assert np.abs(steps[:, axis]).max() <= 1.65 * span / (frames - 1) + 1e-12
    assert np.abs(steps[:, 0]).max() < 0.003 and np.abs(steps[:, 1:]).max() < 0.003
    assert np.abs(steps[[0, -1]]).max() < 1e-3, "eases in and out"


@pytest.mark.parametrize("image_aspect", [4 / 3, 3 / 4, 16 / 9, 9 / 16, 2.5])
@pytest.mark.parametrize("output_aspect", [16 / 9, 9 / 16])
def test_fitted_crops_never_leave_the_photo(image_aspect, output_aspect):
    wild = Motion("wild", 0.8, 1.2, (0.0, 1.0), (1.0, 0.0))
    for motion in [*MOTIONS.values(), wild]:
        fitted = fit_motion(motion, image_aspect, output_aspect)
        cover_w = min(1.0, output_aspect / image_aspect)
        cover_h = min(1.0, image_aspect / output_aspect)
        for zoom, cx, cy in motion_path(fitted, 90):
            half_w, half_h = cover_w / zoom / 2, cover_h / zoom / 2
            assert zoom >= 1.0
            assert cx - half_w >= -1e-9 and cx + half_w <= 1 + 1e-9, (motion.name, zoom, cx)
            assert cy - half_h >= -1e-9 and cy + half_h <= 1 + 1e-9, (motion.name, zoom, cy)


def test_rendered_pan_is_smooth(photos, tmp_path):
    """A pure pan must move a marker with sub-pixel smoothness; whole-pixel crops fail this."""
    dest = tmp_path / "pan.mp4"
    pan = Motion("test_pan", 1.15, 1.15, (0.3, 0.5), (0.7, 0.5))
    render_ken_burns(photos["marker"], dest, width=640, height=360, duration_s=3, motion=pan)
    jitter, travel = _jitter(dest, 640, 360)
    print(f"Ken Burns pan jitter: RMS second difference {jitter:.3f} px over {travel:.1f} px of travel")
    assert travel > 60, "the marker should actually move"
    assert jitter < JITTER_LIMIT_PX


def test_jitter_check_catches_whole_pixel_zoompan(photos, tmp_path):
    """The same pan through ffmpeg's zoompan (integer crop offsets) must fail the smoothness bound."""
    dest = tmp_path / "zoompan.mp4"
    n = 90
    ease = f"(on/{n - 1})*(on/{n - 1})*(3-2*on/{n - 1})"
    vf = f"crop=960:540,zoompan=z=1.15:x='(iw-iw/zoom)*{ease}':y='(ih-ih/zoom)/2':d={n}:s=640x360:fps=30"
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(photos["marker"]), "-vf", vf, "-frames:v", str(n),
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(dest)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    jitter, travel = _jitter(dest, 640, 360)
    print(f"zoompan pan jitter: RMS second difference {jitter:.3f} px over {travel:.1f} px of travel")
    assert travel > 60
    assert jitter > JITTER_LIMIT_PX
