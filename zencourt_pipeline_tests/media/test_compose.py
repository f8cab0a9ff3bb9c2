"""compose_video (one ffmpeg pass), its overlays and thumbnails, against real ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zencourt_pipeline.media import graphs, overlays
from zencourt_pipeline.media.compose import ClipInput, compose_video, render_timeline
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe, run_ffmpeg
from zencourt_pipeline.media.templates import Template, load_template
from zencourt_pipeline.media.thumbnails import extract_thumbnail
from zencourt_pipeline.media.timeline.build import build_timeline, transition_frames
from zencourt_pipeline.media.timeline.model import Timeline


def _clip(path: Path, source: str, width: int, height: int, seconds: float) -> Path:
    """A clip already in normalized form (the compositor's input contract)."""
    spec = f"{source}{':' if '=' in source else '='}s={width}x{height}:r=30"
    run_ffmpeg([
        "-f", "lavfi", "-i", spec, "-t", str(seconds),
        "-vf", "format=yuv420p", *graphs.x264_args(preset="ultrafast", crf=32, fps=30), "-an", str(path),
    ])  # fmt: skip
    return path


@pytest.fixture(scope="module")
def landscape(tmp_path_factory) -> list[ClipInput]:
    d = tmp_path_factory.mktemp("compose-landscape")
    specs = [("color=c=white", 2.5, "Living room"), ("testsrc2", 3.0, "Kitchen"),
             ("smptebars", 2.0, None), ("testsrc", 2.5, "Primary bedroom with a view of the garden")]  # fmt: skip
    return [
        ClipInput(_clip(d / f"c{i}.mp4", src, 1280, 720, secs), secs, caption)
        for i, (src, secs, caption) in enumerate(specs)
    ]


@pytest.fixture(scope="module")
def vertical(tmp_path_factory) -> list[ClipInput]:
    d = tmp_path_factory.mktemp("compose-vertical")
    specs = [("testsrc2", 2.0, "Entry"), ("smptebars", 2.5, "Kitchen"), ("testsrc", 2.0, "Deck")]
    return [
        ClipInput(_clip(d / f"v{i}.mp4", src, 720, 1280, secs), secs, caption)
        for i, (src, secs, caption) in enumerate(specs)
    ]


def _gray_frame(path: Path, at: float, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(height, width).astype(float)


def _audio_seconds(path: Path) -> float:
    report = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    h, m, s = report.rsplit("time=", 1)[1].split()[0].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _assert_video(result, *, width: int, height: int, music: bool):
    info = probe(result.path, count_frames=True)
    assert info.codec == "h264"
    assert (info.width, info.height) == (width, height)
    assert info.fps == 30
    assert info.pix_fmt == "yuv420p"
    assert abs(info.frame_count / 30 - result.planned_duration_s) <= 0.1
    assert abs(info.duration - result.planned_duration_s) <= 0.1
    assert abs(result.duration_s - result.planned_duration_s) <= 0.1
    assert info.has_audio == music
    if music:
        assert info.audio_codec == "aac"
        assert abs(_audio_seconds(result.path) - result.planned_duration_s) <= 0.1
    if result.thumbnail_path is not None:
        data = result.thumbnail_path.read_bytes()
        assert data[:3] == b"\xff\xd8\xff"
        with Image.open(result.thumbnail_path) as img:
            assert img.format == "JPEG" and img.size == (width, height)


def planned_duration(durations: list[float], template: Template) -> float:
    clips = [ClipInput(Path(f"c{i}.mp4"), d) for i, d in enumerate(durations)]
    return build_timeline(clips, width=1280, height=720, title="T", template=template).duration_s


def test_planned_duration():
    default = load_template("default")
    assert planned_duration([5.0] * 6, default) == pytest.approx(27.5)
    assert planned_duration([4.0], default) == pytest.approx(4.0)
    with pytest.raises(MediaError, match="zero clips"):
        planned_duration([], default)
    classic = load_template("classic")
    assert planned_duration([3.0, 3.0, 3.0], classic) == pytest.approx(9.0 - 2 * 0.8 + 2.5)


def test_transition_is_shortened_for_short_clips():
    slow = Template(name="slow", transition_seconds=1.5)
    assert transition_frames([150, 150], slow) == 45
    shortened = transition_frames([150, 60, 150], slow)  # middle clip must cover two transitions
    assert shortened == 27  # 90% of half the middle clip
    assert planned_duration([5.0, 2.0, 5.0], slow) == pytest.approx(12.0 - 2 * shortened / 30)


def test_compose_landscape_with_music_title_and_captions(landscape, tmp_path):
    template = load_template("default")
    dest = tmp_path / "out" / "listing.mp4"
    thumb = tmp_path / "out" / "listing.jpg"
    result = compose_video(
        landscape, dest, width=1280, height=720, title="12 Harbour View Road, Seaside Heights",
        template=template, thumbnail_dest=thumb,
    )  # fmt: skip
    assert result.path == dest and result.thumbnail_path == thumb
    assert result.transitions == 3
    assert result.planned_duration_s == pytest.approx(2.5 + 3.0 + 2.0 + 2.5 - 3 * 0.5)
    _assert_video(result, width=1280, height=720, music=True)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["listing.jpg", "listing.mp4"]
    # The first clip is plain white: while the title is up, its translucent band darkens the middle rows.
    frame = _gray_frame(dest, 1.5, 1280, 720)
    assert frame[330:390, 20:100].mean() < 200  # translucent dark band, left of the text
    assert frame[20:80].mean() > 235  # top of the frame stays white


def test_compose_vertical_with_end_card_no_music(vertical, tmp_path):
    template = load_template("classic")
    assert template.music is None
    result = compose_video(
        vertical, tmp_path / "v.mp4", width=720, height=1280, title="Loft 5B", template=template,
        thumbnail_dest=tmp_path / "v.jpg", work_dir=tmp_path / "work",
    )  # fmt: skip
    assert result.transitions == 3  # two between clips, one into the end card
    assert result.planned_duration_s == pytest.approx(6.5 - 2 * 0.8 + 2.5)
    _assert_video(result, width=720, height=1280, music=False)
    assert (tmp_path / "work" / "end_card.png").is_file()
    end = _gray_frame(tmp_path / "v.mp4", result.planned_duration_s - 1.2, 720, 1280)
    assert end.std() > 5 and end.mean() < 60  # dark end card with light text


def test_compose_single_clip_rescales_mismatched_input(tmp_path):
    clip = _clip(tmp_path / "small.mp4", "testsrc2", 640, 360, 2.0)
    result = compose_video(
        [ClipInput(clip, 2.0, "Garden")], tmp_path / "one.mp4", width=1280, height=720,
        title=None, template=load_template("modern"), thumbnail_dest=tmp_path / "one.jpg",
    )  # fmt: skip
    assert result.transitions == 0
    assert result.planned_duration_s == pytest.approx(2.0)
    _assert_video(result, width=1280, height=720, music=True)


def test_compose_zero_clips_and_bad_clips(tmp_path):
    template = load_template(None)
    with pytest.raises(MediaError) as err:
        compose_video([], tmp_path / "x.mp4", width=1280, height=720, title="t", template=template)
    assert err.value.code == "INVALID_INPUT"
    with pytest.raises(MediaError, match="not found"):
        compose_video([ClipInput(tmp_path / "missing.mp4", 3.0)], tmp_path / "x.mp4",
                      width=1280, height=720, title=None, template=template)  # fmt: skip
    assert not (tmp_path / "x.mp4").exists()


def test_title_card_fits_long_titles():
    long_title = (
        "The Grand Residence at 1234 Extraordinarily Long Boulevard Name, Unit 5678, Springfield Heights"
    )
    for width in (1280, 720):
        fnt, lines = overlays.fit_text(long_title, 84, width - 100, max_lines=2)
        assert 1 <= len(lines) <= 2
        assert all(overlays._text_width(fnt, line) <= width - 100 for line in lines)


def test_overlay_images(tmp_path):
    card = overlays.render_title_card(
        tmp_path / "t.png", width=720, height=1280, title="Sunny Loft", subtitle="2 bed"
    )
    caption = overlays.render_caption(tmp_path / "c.png", width=1280, height=720, text="Kitchen")
    for ov, (w, h) in ((card, (720, 1280)), (caption, (1280, 720))):
        with Image.open(ov.path) as img:
            assert img.mode == "RGBA" and img.size == (ov.width, ov.height)
            alpha = np.asarray(img)[..., 3]
            assert 0 < alpha[ov.height // 2, 4] < 255  # translucent band ...
            assert alpha.max() == 255  # ... with opaque text
        assert 0 <= ov.x and ov.x + ov.width <= w and 0 <= ov.y and ov.y + ov.height <= h
        assert ov.x % 2 == 0 and ov.y % 2 == 0
    assert caption.x < 1280 / 4 and caption.y > 720 / 2  # lower left
    end = overlays.render_end_card(
        tmp_path / "e.png", width=720, height=1280, title="Loft", subtitle="Call us"
    )
    with Image.open(end) as img:
        assert img.mode == "RGB" and img.size == (720, 1280)


def test_extract_thumbnail(landscape, tmp_path):
    thumb = extract_thumbnail(landscape[1].path, tmp_path / "t" / "a.jpg", at_s=1.0, width=320)
    with Image.open(thumb) as img:
        assert img.format == "JPEG" and img.size == (320, 180)
    past_end = extract_thumbnail(landscape[1].path, tmp_path / "t" / "b.jpg", at_s=60.0)
    with Image.open(past_end) as img:
        assert img.size == (1280, 720)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["a.jpg", "b.jpg"]
    with pytest.raises(MediaError):
        extract_thumbnail(tmp_path / "missing.mp4", tmp_path / "c.jpg")


def test_a_stored_timeline_re_renders_the_same_video(vertical, tmp_path):
    """What the pipeline stores next to a video (its timeline JSON) renders it again exactly:
    same frames, same length, the end card, captions and title where the timeline puts them."""
    template = load_template("classic")
    first = compose_video(vertical, tmp_path / "a.mp4", width=720, height=1280, title="12 Main St", template=template,
                          strategy="full")  # fmt: skip
    stored = tmp_path / "a.timeline.json"
    stored.write_text(first.timeline.to_json(), encoding="utf-8")
    timeline = Timeline.from_json(stored.read_text(encoding="utf-8"))
    assert timeline == first.timeline and timeline.to_json() == stored.read_text(encoding="utf-8")
    again = render_timeline(timeline, tmp_path / "b.mp4", strategy="full")
    a, b = probe(first.path, count_frames=True), probe(again.path, count_frames=True)
    assert a.frame_count == b.frame_count == timeline.total_frames
    assert again.planned_duration_s == first.planned_duration_s == timeline.duration_s
    assert abs(b.duration - a.duration) < 1e-3
    for at in (0.5, timeline.duration_s - 0.5):  # same encoder input: the same pictures
        assert np.abs(_gray_frame(first.path, at, 720, 1280) - _gray_frame(again.path, at, 720, 1280)).mean() < 1.0


@pytest.mark.parametrize(("focus_x", "kept"), [(0.0, "red"), (None, "both"), (1.0, "blue")])
def test_a_landscape_clip_is_reframed_into_a_vertical_output_around_its_focus_point(tmp_path, focus_x, kept):
    clip = tmp_path / "halves.mp4"
    run_ffmpeg([
        "-f", "lavfi", "-i", "color=c=red:s=1280x720:r=30", "-t", "1.5",
        "-vf", "drawbox=x=640:y=0:w=640:h=720:color=blue:t=fill,format=yuv420p",
        *graphs.x264_args(preset="ultrafast", crf=20, fps=30), "-an", str(clip),
    ])  # fmt: skip
    focus = (focus_x, 0.5) if focus_x is not None else None
    template = load_template("default").model_copy(update={"fade_in_seconds": 0.0, "fade_out_seconds": 0.0})
    result = compose_video(
        [ClipInput(clip, 1.5, focus=focus)], tmp_path / "v.mp4", width=360, height=640, title=None, template=template,
    )  # fmt: skip
    assert (result.info.width, result.info.height) == (360, 640)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-ss", "0.7", "-i", str(result.path), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frame = np.frombuffer(raw, np.uint8).reshape(640, 360, 3).astype(float)
    left, right = frame[:, :40].mean(axis=(0, 1)), frame[:, -40:].mean(axis=(0, 1))
    red = lambda rgb: rgb[0] > 150 and rgb[2] < 80  # noqa: E731
    blue = lambda rgb: rgb[2] > 150 and rgb[0] < 80  # noqa: E731
    expected = {"red": (red, red), "blue": (blue, blue), "both": (red, blue)}[kept]
    assert expected[0](left) and expected[1](right), (left, right)
