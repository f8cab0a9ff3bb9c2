"""A narration against real ffmpeg (issue 14 point 4): the file checks (kinds, damage, size and
length bounds), the speech spans found by silence detection, and a rendered narrated video whose
music is measured under the voice and without it (the ducking figure, >= 10 dB) and whose mix is
at the delivery loudness (-14 LUFS +-1, true peak <= -1 dBTP)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import graphs, loudness, mix
from zencourt_pipeline.media.compose import ClipInput, render_timeline
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import probe, run_ffmpeg
from zencourt_pipeline.media.narration import analyze_narration, check_narration
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.build import build_timeline
from zencourt_pipeline.media.timeline.model import Timeline

SPEECH = ((0.5, 2.5), (5.0, 6.5))  # the "voice": a 1800 Hz tone in these spans, silence between
VOICE_S = 7.0
MUSIC_HZ, VOICE_HZ = 220, 1800


def make_voice(dest: Path, *, codec: list[str], seconds: float = VOICE_S, speech=SPEECH) -> Path:
    """A tone standing in for a voice: on in the `speech` spans, off elsewhere."""
    on = "+".join(f"between(t,{a},{b})" for a, b in speech)
    run_ffmpeg([
        "-f", "lavfi", "-i", f"sine=f={VOICE_HZ}:sample_rate=44100:d={seconds}",
        "-af", f"volume='if({on},0.3,0)':eval=frame", "-ac", "1", *codec, str(dest),
    ])  # fmt: skip
    return dest


def make_music(dest: Path, seconds: float = 4.0) -> Path:
    """A steady 220 Hz bed (looped by the timeline)."""
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=f={MUSIC_HZ}:sample_rate=48000:d={seconds}", "-c:a", "aac", str(dest)])
    return dest


def make_clip(dest: Path, source: str, seconds: float, size: str = "320x180") -> Path:
    run_ffmpeg([
        "-f", "lavfi", "-i", f"{source}=s={size}:r=30", "-t", str(seconds), "-vf", "format=yuv420p",
        *graphs.x264_args(preset="ultrafast", crf=32, fps=30), "-an", str(dest),
    ])  # fmt: skip
    return dest


KINDS = {
    "m4a": ["-c:a", "aac"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "96k"],
    "wav": ["-c:a", "pcm_s16le"],
    "aac": ["-c:a", "aac", "-f", "adts"],
}
EXPECTED_KIND = {"m4a": "aac", "mp3": "mp3", "wav": "wav", "aac": "aac"}


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("voices")
    return {ext: make_voice(d / f"voice.{ext}", codec=codec) for ext, codec in KINDS.items()}


@pytest.mark.parametrize("ext", list(KINDS))
def test_each_accepted_kind_passes_the_check(voices, ext):
    found = check_narration(voices[ext])
    assert found.kind == EXPECTED_KIND[ext] and abs(found.duration_s - VOICE_S) < 0.15, found


def test_bad_narrations_are_refused_with_their_codes(voices, tmp_path):
    page = tmp_path / "page.mp3"
    page.write_text("<html><body>404</body></html>")
    video = make_clip(tmp_path / "video.mp4", "testsrc", 1.0)
    data = voices["m4a"].read_bytes()
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cases = [
        (page, {}, ErrorCode.NARRATION_INVALID),
        (video, {}, ErrorCode.NARRATION_INVALID),
        (cut, {}, ErrorCode.NARRATION_INVALID),
        (empty, {}, ErrorCode.NARRATION_INVALID),
        (voices["wav"], {"max_bytes": 10_000}, ErrorCode.NARRATION_TOO_LARGE),
        (voices["mp3"], {"max_seconds": 5.0}, ErrorCode.NARRATION_TOO_LONG),
    ]
    for path, bounds, code in cases:
        with pytest.raises(MediaError) as raised:
            check_narration(path, **bounds)
        assert raised.value.code is code, (path.name, raised.value)


def test_speech_spans_come_from_silence_detection(voices):
    narration = analyze_narration(voices["mp3"], identifies_agent=False)
    assert len(narration.speech) == 2, narration.speech
    for (start, end), (want_start, want_end) in zip(narration.speech, SPEECH, strict=True):
        assert abs(start - want_start) < 0.1 and abs(end - want_end) < 0.1, narration.speech
    assert narration.loudness_lufs is not None and -40 < narration.loudness_lufs < -10
    assert narration.identifies_agent is False and abs(narration.duration_s - VOICE_S) < 0.15


def music_level_db(video: Path, start: float, end: float) -> float:
    """RMS level (dBFS) of the music alone in [start, end] of `video`'s audio: the 1800 Hz voice is
    filtered out (three 500 Hz low-passes: about -66 dB at 1800 Hz), the 220 Hz bed kept (astats)."""
    proc = run_ffmpeg([
        "-ss", str(start), "-t", str(end - start), "-i", str(video), "-vn",
        "-af", "lowpass=f=500,lowpass=f=500,lowpass=f=500,astats=measure_perchannel=none:measure_overall=RMS_level",
        "-f", "null", "-",
    ])  # fmt: skip
    return float(re.findall(r"RMS level dB: (-?[\d.]+)", proc.stderr.decode())[-1])


def ducking_figure(video: Path) -> tuple[float, float, float]:
    """(music under speech, music without speech, the difference) in dB, measured on the file."""
    under = max(music_level_db(video, 1.0, 2.3), music_level_db(video, 5.3, 6.3))  # the louder span: worst case
    free = music_level_db(video, 3.4, 4.6)  # after the release, before the next attack
    return under, free, free - under


@pytest.fixture(scope="module")
def narrated(tmp_path_factory, voices):
    d = tmp_path_factory.mktemp("narrated")
    clips = [ClipInput(make_clip(d / f"c{i}.mp4", src, 2.5), 2.5, room) for i, (src, room) in
             enumerate([("testsrc", "Living room"), ("testsrc2", "Kitchen"), ("smptebars", "Deck")])]  # fmt: skip
    template = Template(name="voiced", music="soft_pad.m4a", music_volume=0.6, title_seconds=0.0, caption_seconds=0.0)
    narration = analyze_narration(voices["m4a"])
    built = build_timeline(clips, width=320, height=180, title=None, template=template, narration=narration)
    tone = make_music(d / "bed.m4a")
    timeline = Timeline.model_validate(
        {**built.model_dump(), "audio": [built.music.model_copy(update={"source": str(tone)}), built.narration]}
    )
    result = render_timeline(timeline, d / "listing.mp4", strategy="full")
    return timeline, result


def test_the_music_is_ducked_at_least_10_db_under_the_voice(narrated):
    timeline, result = narrated
    under, free, figure = ducking_figure(result.path)
    print(f"ducking: music {free:.1f} dB without speech, {under:.1f} dB under speech: {figure:.1f} dB")
    assert figure >= 10.0, (under, free)
    # the narration (7 s + 0.5 s tail) is longer than the clips (6.5 s): the last clip is held
    assert timeline.total_frames == 225 and timeline.clips[-1].out_frame > 75
    info = probe(result.path, count_frames=True)
    assert info.frame_count == 225 and info.has_audio and abs(info.duration - 7.5) < 0.1


def test_the_narrated_mix_is_at_the_delivery_loudness(narrated):
    _, result = narrated
    measured = loudness.measure(result.path)
    print(f"narrated mix: {measured.integrated_lufs:.2f} LUFS, true peak {measured.true_peak_dbtp:.2f} dBTP")
    assert abs(measured.integrated_lufs - loudness.TARGET_LUFS) <= loudness.TOLERANCE_LU, measured
    assert measured.true_peak_dbtp <= loudness.MAX_TRUE_PEAK_DBTP, measured


def test_smart_and_windowed_renders_encode_the_same_mix_as_the_full_graph(narrated):
    timeline, _ = narrated
    assets = RenderAssets(loudnorm="loudnorm=I=-14")
    graph, _, label = graphs.compose_filter(timeline, assets)
    audio = mix.audio_args(timeline, assets, Path("audio.m4a"))
    first = len(timeline.clips)  # no overlay layers, no end card: the audio inputs follow the clips
    assert label == "aout" and graph.endswith(mix.audio_chain(timeline, assets, first))
    assert audio[audio.index("-filter_complex") + 1] == mix.audio_chain(timeline, assets, 0)
