"""Pure tests of the ffmpeg argument / filter graph builders (no ffmpeg runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zencourt_pipeline.media import ffargs, graphs, mix
from zencourt_pipeline.media.timeline.assets import Layer, RenderAssets
from zencourt_pipeline.media.timeline.model import (
    AudioKind,
    AudioTrack,
    Clip,
    GainPoint,
    Timeline,
    Transition,
)
from zencourt_pipeline.media.transitions import XFADE_TRANSITIONS, TransitionKind


def test_fmt_is_fixed_point_without_trailing_zeros():
    assert ffargs.fmt(4.5) == "4.5"
    assert ffargs.fmt(9.0) == "9"
    assert ffargs.fmt(1 / 3) == "0.333333"
    assert ffargs.fmt(1e-9) == "0"
    assert ffargs.fmt(12345.25) == "12345.25"


def _clips(frames: list[int], transition: int = 15, kind: str = "fade", card: bool = False) -> list[Clip]:
    last = len(frames) - 1
    return [
        Clip(source=f"c{i}.mp4", out_frame=n, transition=Transition(kind=TransitionKind(kind), frames=transition)
             if i < last or card else None)
        for i, n in enumerate(frames)
    ]  # fmt: skip


def _starts(frames: list[int], transition: int) -> list[int]:
    return Timeline(width=1280, height=720, clips=_clips(frames, transition)).clip_starts


def test_clip_starts_six_equal_clips():
    # start_i = d_0 + ... + d_(i-1) - i * T (in frames): the xfade offsets
    assert _starts([150] * 6, 15) == [0, 135, 270, 405, 540, 675]


def test_clip_starts_mixed_durations():
    assert _starts([75, 90, 60, 75], 15) == [0, 60, 135, 180]
    assert _starts([120], 15) == [0]
    assert _starts([75, 90, 60], 24) == [0, 51, 117]


def test_normalize_filter_cover_crop_fps_format():
    vf = graphs.normalize_filter(width=1280, height=720, fps=30)
    assert vf == ",".join(
        [
            "setpts=PTS-STARTPTS",
            "fps=30",
            "scale=w='if(gt(dar,1280/720),ceil(720*dar/2)*2,1280)'"
            ":h='if(gt(dar,1280/720),720,ceil(1280/dar/2)*2)':flags=bicubic",
            "crop=1280:720",
            "setsar=1",
            "format=yuv420p",
        ]
    )
    padded = graphs.normalize_filter(width=720, height=1280, fps=30, pad_s=4)
    assert padded.endswith(",tpad=stop_mode=clone:stop_duration=4")


def test_normalize_args_encoder_settings():
    args = graphs.normalize_args(Path("in.mov"), Path("out.mp4"), width=1280, height=720, duration_s=4.0)
    joined = " ".join(args)
    assert args[:2] == ["-i", "in.mov"]
    assert args[args.index("-t") + 1] == "4"
    for expected in (
        "-c:v libx264", "-profile:v high", "-pix_fmt yuv420p", "-g 30", "-keyint_min 30",
        "-sc_threshold 0", "-force_key_frames expr:gte(t,n_forced*1)", "-an",
        "-video_track_timescale 15360", "-crf 20", "-preset veryfast",
        "-use_editlist 0 -movflags +faststart -f mp4 out.mp4",
    ):  # fmt: skip
        assert expected in joined, expected
    assert "autorotate" not in joined  # ffmpeg's default autorotation stays on
    assert args[-1] == "out.mp4"
    untrimmed = graphs.normalize_args(Path("a"), Path("b"), width=640, height=360, duration_s=None)
    assert "-t" not in untrimmed
    assert "tpad" not in " ".join(untrimmed)


def test_keyframe_expression_forces_the_extra_keyframes_and_leaves_the_grid_to_x264():
    assert graphs.keyframe_expr(30) == "expr:gte(t,n_forced*1)"
    expr = graphs.keyframe_expr(30, [135, 53, 53, 0])
    assert expr == "expr:eq(n,0)+eq(n,53)+eq(n,135)"
    args = graphs.normalize_args(Path("a"), Path("b"), width=640, height=360, duration_s=5, keyframes=[53])
    assert args[args.index("-force_key_frames") + 1] == graphs.keyframe_expr(30, [53])


def test_normalize_args_identical_for_every_clip_apart_from_paths():
    a = graphs.normalize_args(Path("a.mp4"), Path("x.mp4"), width=1280, height=720, duration_s=3)
    b = graphs.normalize_args(Path("b.webm"), Path("y.mp4"), width=1280, height=720, duration_s=3)
    assert [x for x in a if x not in ("a.mp4", "x.mp4")] == [x for x in b if x not in ("b.webm", "y.mp4")]


def _timeline(frames=(75, 90, 60), transition: int = 15, kind: str = "fade", **kw) -> Timeline:
    return Timeline(width=1280, height=720, clips=_clips(list(frames), transition, kind, card="end_card" in kw), **kw)


def _assets(tl: Timeline, **kw) -> RenderAssets:
    layers = tuple(Layer(Path(f"o{k}.png"), 0, 0) for k in range(len(tl.texts) + len(tl.images)))
    return RenderAssets(**{"layers": layers, **kw})


def test_compose_filter_chains_xfades_with_offsets():
    tl = _timeline(kind="smoothleft")
    graph, video, audio = graphs.compose_filter(tl, _assets(tl))
    assert video == "vout" and audio is None
    assert "[c0][c1]xfade=transition=smoothleft:duration=0.5:offset=2[x1]" in graph
    assert "[x1][c2]xfade=transition=smoothleft:duration=0.5:offset=4.5[x2]" in graph
    assert "[x2]trim=duration=6.5,format=yuv420p[vout]" in graph
    for i, d in enumerate(["2.5", "3", "2"]):
        assert f"[{i}:v]setpts=PTS-STARTPTS,fps=30,setsar=1" in graph
        assert f"tpad=stop_mode=clone:stop_duration={d},trim=duration={d},setpts=PTS-STARTPTS[c{i}]" in graph
    assert "scale" not in graph  # clips are already normalized


def test_compose_filter_per_clip_transitions():
    clips = _clips([75, 90, 60])
    clips[1] = clips[1].model_copy(update={"transition": Transition(kind=TransitionKind.DISSOLVE, frames=24)})
    graph, _, _ = graphs.compose_filter(Timeline(width=1280, height=720, clips=clips), RenderAssets())
    assert "[c0][c1]xfade=transition=fade:duration=0.5:offset=2[x1]" in graph
    assert "[x1][c2]xfade=transition=dissolve:duration=0.8:offset=4.2[x2]" in graph
    assert "[x2]trim=duration=6.2,format=yuv420p[vout]" in graph


def test_compose_filter_rescales_only_flagged_clips():
    tl = _timeline()
    graph, _, _ = graphs.compose_filter(tl, _assets(tl, rescale=(False, True, False)))
    assert graph.count("crop=w='if(gt(dar,1280/720)") == 1
    assert "[1:v]setpts=PTS-STARTPTS,fps=30,crop=" in graph


def test_compose_filter_single_clip_has_no_xfade():
    tl = _timeline(frames=(120,))
    graph, _, _ = graphs.compose_filter(tl, _assets(tl))
    assert "xfade" not in graph
    assert "[c0]trim=duration=4,format=yuv420p[vout]" in graph


# The complete argument lists of whole compositions (overlays, end card, music, rescaling, input
# order, output settings) are golden files: test_golden_graphs.py.


def test_gain_automation_is_linear_between_points():
    assert mix.gain_filter([GainPoint(frame=0, db=0.0)], 30) == "volume=1"
    expr = mix.gain_filter([GainPoint(frame=30, db=0.0), GainPoint(frame=60, db=-20.0)], 30)
    assert expr == "volume='if(lt(t,1),1,if(lt(t,2),1+(-0.9)*(t-1)/1,0.1))':eval=frame"


def test_mp4_output_of_pieces_and_a_narrated_timeline_mixes_its_tracks():
    assert ffargs.mp4_output(Path("p.mp4"), faststart=False, final=False) == ["-use_editlist", "0", "-f", "mp4", "p.mp4"]
    narrated = _timeline(audio=[AudioTrack(kind=AudioKind.NARRATION, source="voice.m4a")])
    args = graphs.compose_args(narrated, RenderAssets(), Path("out.mp4"))
    assert args[args.index("voice.m4a") - 1] == "-i" and "-stream_loop" not in args  # a voice is not looped
    graph = args[args.index("-filter_complex") + 1]
    assert graph.splitlines()[-1].startswith("[3:a]atrim=duration=6.5,") and graph.endswith(",apad=whole_dur=6.5[aout]")


@pytest.mark.parametrize("width", [None, 320])
def test_thumbnail_args_fast_seek_one_jpeg_frame(width):
    args = graphs.thumbnail_args(Path("v.mp4"), Path("t.jpg"), at_s=2.5, width=width)
    assert args.index("-ss") < args.index("-i")
    assert args[args.index("-ss") + 1] == "2.5"
    assert args[args.index("-frames:v") + 1] == "1"
    assert args[args.index("-q:v") + 1] == "3"
    assert ("scale=w=320:h=-2" in " ".join(args)) == (width == 320)


def test_transition_names_include_the_template_styles():
    for name in ("fade", "smoothleft", "circleopen", "fadeblack", "dissolve", "slideleft"):
        assert name in XFADE_TRANSITIONS and TransitionKind(name) == name
    assert "custom" not in XFADE_TRANSITIONS


def test_a_reframed_clip_is_cropped_around_its_focus_point_then_scaled_with_lanczos():
    clips = _clips([75, 90])
    clips[1] = clips[1].model_copy(update={"focus_x": 0.2, "focus_y": 1.0})
    tl = Timeline(width=1080, height=1920, clips=clips)
    graph, _, _ = graphs.compose_filter(tl, _assets(tl, rescale=(True, True)))
    chains = graph.split(";\n")
    crop = (
        "crop=w='if(gt(dar,1080/1920),min(iw,2*round(ih*1080/1920/sar/2)),iw)'"
        ":h='if(gt(dar,1080/1920),ih,min(ih,2*round(iw*sar*1920/1080/2)))'"
    )
    # the crop first (only the kept pixels are scaled), the centre being ffmpeg's default crop
    assert f"fps=30,{crop},scale=1080:1920:flags=lanczos,setsar=1" in chains[0]
    assert (
        f"fps=30,{crop}:x='max(0,min(iw-ow,iw*0.2-ow/2))':y='max(0,min(ih-oh,ih*1-oh/2))',"
        "scale=1080:1920:flags=lanczos,setsar=1" in chains[1]
    )
    assert graphs.cover_reframe(1280, 720) == f"{crop.replace('1080/1920', '1280/720').replace('1920/1080', '720/1280')},scale=1280:720:flags=lanczos"
