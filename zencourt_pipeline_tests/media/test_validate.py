"""media/validate.py and media/profiles.py: composed outputs meet every profile they target;
files made wrong on purpose (edit lists, moov at the end, 25 fps, ...) fail naming the rule."""

from __future__ import annotations

import pytest

from zencourt_pipeline.media import ffargs, graphs, mix
from zencourt_pipeline.media.compose import ClipInput, compose_video
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.normalize import normalize_clip
from zencourt_pipeline.media.profiles import HOUSE, PROFILES, SPECS_AS_OF, Destination, targets
from zencourt_pipeline.media.templates import load_template
from zencourt_pipeline.media.validate import Rule, mp4_layout, validate, validate_targets


def _rules(problems) -> set[Rule]:
    return {problem.rule for problem in problems}


@pytest.fixture(scope="module")
def normalized(tmp_path_factory) -> dict[str, list[ClipInput]]:
    work = tmp_path_factory.mktemp("validate")
    clips: dict[str, list[ClipInput]] = {}
    for orientation, (width, height) in {"landscape": (1280, 720), "vertical": (720, 1280)}.items():
        clips[orientation] = []
        for i, source in enumerate(["testsrc2", "smptebars", "testsrc"]):
            raw = work / f"{orientation}-raw{i}.mp4"
            run_ffmpeg(["-f", "lavfi", "-i", f"{source}=s=960x540:r=24", "-t", "5", "-c:v", "libx264",
                        "-preset", "ultrafast", str(raw)])  # fmt: skip
            out = work / f"{orientation}-{i}.mp4"
            normalize_clip(raw, out, width=width, height=height, duration_s=5.0)
            clips[orientation].append(ClipInput(out, 5.0, f"Room {i}"))
    return clips


@pytest.mark.parametrize(
    ("orientation", "size", "strategy"),
    [
        ("landscape", (1280, 720), "smart"),
        ("landscape", (1280, 720), "full"),
        ("vertical", (720, 1280), "auto"),
    ],
)
def test_composed_outputs_pass_every_profile_they_target(normalized, tmp_path, orientation, size, strategy):
    dest = tmp_path / "listing.mp4"
    result = compose_video(normalized[orientation], dest, width=size[0], height=size[1], title="12 Main St",
                           template=load_template("default"), strategy=strategy)  # fmt: skip
    layout = mp4_layout(dest)
    assert layout.edit_lists == () and layout.faststart  # was: edts/elst in both tracks
    destinations = targets(*size)
    assert (Destination.YOUTUBE_SHORTS in destinations) == (orientation == "vertical")
    report = validate_targets(dest, destinations)
    assert set(report) == {"house", *destinations}
    assert report == {name: [] for name in report}, (result.strategy, report)
    for clip in normalized[orientation]:  # the normalized clips carry no edit list either
        assert mp4_layout(clip.path).edit_lists == ()


def test_a_default_ffmpeg_mux_fails_naming_each_problem(tmp_path):
    bad = tmp_path / "bad.mp4"
    run_ffmpeg([
        "-f", "lavfi", "-i", "testsrc2=s=720x1280:r=25", "-f", "lavfi", "-i", "sine=f=440:sample_rate=44100",
        "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-pix_fmt", "yuv420p",
        "-x264-params", "open-gop=1", "-c:a", "aac", "-ac", "1", str(bad),
    ])  # fmt: skip
    layout = mp4_layout(bad)
    assert set(layout.edit_lists) == {"vide", "soun"} and not layout.faststart
    house = validate(bad, HOUSE)
    assert {Rule.EDIT_LIST, Rule.FASTSTART, Rule.FRAME_RATE, Rule.VIDEO_PROFILE, Rule.AUDIO_SAMPLE_RATE,
            Rule.AUDIO_CHANNELS, Rule.LOUDNESS} <= _rules(house)  # fmt: skip
    messages = {problem.rule: str(problem) for problem in house}
    assert messages[Rule.EDIT_LIST] == "edit_list: edit list (edts/elst) in the vide, soun track(s)"
    assert messages[Rule.FRAME_RATE] == "frame_rate: 25 fps below 30 fps"
    assert "moov is not before mdat" in messages[Rule.FASTSTART]
    assert "44100 Hz" in messages[Rule.AUDIO_SAMPLE_RATE] and "mono" in messages[Rule.AUDIO_CHANNELS]
    assert messages[Rule.LOUDNESS].endswith("LUFS integrated, not -14 +-1")  # ffmpeg's sine: about -21
    reels = _rules(validate(bad, PROFILES[Destination.INSTAGRAM_REELS]))
    assert {Rule.EDIT_LIST, Rule.FASTSTART} <= reels and Rule.FRAME_RATE not in reels  # 25 fps is fine there
    assert validate(bad, PROFILES[Destination.MLS]) == []  # the MLS asks little


def test_one_wrong_thing_is_the_only_problem(tmp_path):
    args = ["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000",
            "-t", "4", *graphs.x264_args(preset="veryfast", crf=30, fps=30), "-af", "loudnorm=I=-14:TP=-1.5",
            *mix.AUDIO_ARGS]  # fmt: skip
    good = tmp_path / "good.mp4"
    run_ffmpeg([*args, *ffargs.mp4_output(good)])
    assert validate(good, HOUSE) == []
    edited = tmp_path / "edited.mp4"  # the muxer's default: an edit list
    run_ffmpeg([*args, "-movflags", "+faststart", "-f", "mp4", str(edited)])
    assert _rules(validate(edited, HOUSE)) == {Rule.EDIT_LIST}
    moov_last = tmp_path / "moov-last.mp4"
    run_ffmpeg([*args, "-use_editlist", "0", "-f", "mp4", str(moov_last)])
    assert _rules(validate(moov_last, HOUSE)) == {Rule.FASTSTART}
    assert mp4_layout(moov_last).top_level[-1] == "moov"
    short = tmp_path / "short.mp4"
    run_ffmpeg([*args[: -len(mix.AUDIO_ARGS)], "-t", "2", *mix.AUDIO_ARGS, *ffargs.mp4_output(short)])
    problems = validate(short, PROFILES[Destination.INSTAGRAM_REELS])
    assert _rules(problems) == {Rule.DURATION} and "shorter than 3 s" in str(problems[0])
    loud = tmp_path / "loud.mp4"  # +15 dB: too loud, and the sine peaks pass -1 dBTP
    run_ffmpeg([*args[: args.index("-af")], "-af", "loudnorm=I=-14:TP=-1.5,volume=15dB", *mix.AUDIO_ARGS,
                *ffargs.mp4_output(loud)])  # fmt: skip
    loud_problems = {problem.rule: problem.message for problem in validate(loud, HOUSE)}
    assert set(loud_problems) == {Rule.LOUDNESS, Rule.TRUE_PEAK}, loud_problems
    assert loud_problems[Rule.TRUE_PEAK].startswith("true peak ") and loud_problems[Rule.TRUE_PEAK].endswith(
        "dBTP above -1 dBTP"
    )
    not_mp4 = tmp_path / "x.mp4"
    not_mp4.write_bytes(b"not a video at all")
    assert _rules(validate(not_mp4, HOUSE)) == {Rule.UNREADABLE}


def test_profiles_are_dated_data_and_targets_follow_the_shape():
    assert all(profile.as_of == SPECS_AS_OF for profile in PROFILES.values())
    assert set(PROFILES) == set(Destination)
    assert PROFILES[Destination.MLS].max_bytes == 300_000_000
    assert (
        PROFILES[Destination.INSTAGRAM_REELS].no_edit_lists
        and PROFILES[Destination.INSTAGRAM_REELS].faststart
    )
    assert targets(720, 1280) == list(Destination)
    assert targets(1280, 720) == [Destination.INSTAGRAM_REELS, Destination.TIKTOK, Destination.MLS]
    assert Destination.TIKTOK not in targets(1000, 1000)  # TikTok: 9:16 or 16:9
