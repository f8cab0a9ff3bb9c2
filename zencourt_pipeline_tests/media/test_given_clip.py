"""A clip the web app gives (issue 14 point 5), judged from the file (`media.given_clip`), and
trimmed to its in/out points by normalize (`normalize_clip(start_s=...)`)."""

from __future__ import annotations

import pytest

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.given_clip import check_given_clip, container_of
from zencourt_pipeline.media.normalize import normalize_clip
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.fakes.given_clips import audio_only, long_clip, truncated, video_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("given")
    made = {
        "mp4": video_clip(d / "a.mp4"),
        "webm": video_clip(d / "b.webm", size="400x300", fps=24),
        "colors": video_clip(d / "c.mp4", colors=("red", "blue", "green")),
        "audio": audio_only(d / "x.m4a"),
        "long": long_clip(d / "l.mp4", 30),
        "photo": write_photo(d / "p.jpg"),
        "page": d / "page.mp4",
        "empty": d / "empty.mp4",
        "mp3": d / "tone.mp3",
    }
    made["truncated"] = truncated(d / "t.mp4", made["mp4"])
    made["page"].write_bytes(b"<!doctype html><title>404</title>")
    made["empty"].write_bytes(b"")
    run_ffmpeg(["-f", "lavfi", "-i", "sine=d=1", str(made["mp3"])])
    return made


def test_good_clips_are_described(clips):
    mp4 = check_given_clip(clips["mp4"], in_s=1, out_s=3, max_source_s=600)
    assert (mp4.container, mp4.width, mp4.height, mp4.fps, mp4.has_audio) == ("mp4", 320, 240, 25.0, True)
    assert abs(mp4.duration_s - 4.0) < 0.05
    webm = check_given_clip(clips["webm"], in_s=0, out_s=4, max_source_s=600)
    assert (webm.container, webm.width, webm.height, webm.fps) == ("webm", 400, 300, 24.0)


@pytest.mark.parametrize(
    ("kind", "code", "why"),
    [
        ("audio", ErrorCode.CLIP_AUDIO_ONLY, "no video stream"),
        ("mp3", ErrorCode.CLIP_AUDIO_ONLY, "an audio file"),
        ("truncated", ErrorCode.CLIP_TRUNCATED, "cut short or damaged"),
        ("empty", ErrorCode.CLIP_TRUNCATED, "empty"),
        ("photo", ErrorCode.CLIP_NOT_VIDEO, "not a video"),
        ("page", ErrorCode.CLIP_NOT_VIDEO, "not a video"),
        ("long", ErrorCode.CLIP_TOO_LONG, "lasts 30.0 s (at most 20 s)"),
    ],
)
def test_bad_clips_say_why(clips, kind, code, why):
    with pytest.raises(MediaError) as raised:
        check_given_clip(clips[kind], in_s=0, out_s=2, max_source_s=20)
    assert raised.value.code is code and why in raised.value.message


@pytest.mark.parametrize(("in_s", "out_s"), [(4.0, 5.0), (1.0, 4.5), (5.0, 6.0), (4.0, None)])
def test_points_past_the_end_are_out_of_range(clips, in_s, out_s):
    with pytest.raises(MediaError) as raised:
        check_given_clip(clips["mp4"], in_s=in_s, out_s=out_s, max_source_s=600)
    assert raised.value.code is ErrorCode.CLIP_OUT_OF_RANGE and "past the clip's end" in raised.value.message


def test_without_an_out_point_only_the_in_point_is_checked(clips):
    assert check_given_clip(clips["mp4"], in_s=3.5, out_s=None, max_source_s=600).duration_s == pytest.approx(4.0, abs=0.05)


def test_container_magic():
    assert container_of(b"\x00\x00\x00\x20ftypisom") == "mp4"
    assert container_of(b"\x1a\x45\xdf\xa3\x01") == "webm"
    assert container_of(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio" == container_of(b"ID3\x04")
    assert container_of(b"\xff\xd8\xff\xe0") is None


def _centre_rgb(path) -> tuple[int, int, int]:
    raw = run_ffmpeg(["-i", str(path), "-frames:v", "1", "-vf", "crop=2:2", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    return raw[0], raw[1], raw[2]


def test_normalize_starts_at_the_in_point_and_lasts_the_span(clips, tmp_path):
    """Red, blue, green one second each: in 1 s, out 2.5 s gives a 1.5 s clip whose first frame is blue."""
    info = normalize_clip(clips["colors"], tmp_path / "n.mp4", width=320, height=240, duration_s=1.5, start_s=1.0)
    assert abs(info.duration - 1.5) < 0.05 and (info.width, info.height, info.fps) == (320, 240, 30.0)
    r, g, b = _centre_rgb(tmp_path / "n.mp4")
    assert b > 200 and r < 60 and g < 60, (r, g, b)
    untrimmed = normalize_clip(clips["colors"], tmp_path / "u.mp4", width=320, height=240, duration_s=1.0)
    r, g, b = _centre_rgb(tmp_path / "u.mp4")
    assert r > 200 and b < 60 and abs(untrimmed.duration - 1.0) < 0.05
