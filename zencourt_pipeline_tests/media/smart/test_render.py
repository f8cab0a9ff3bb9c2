"""Smart rendering (copy untouched GOPs, re-encode only what changes) against real ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zencourt_pipeline.media import compose, graphs, templates
from zencourt_pipeline.media.compose import ClipInput, compose_video
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe, run_ffmpeg
from zencourt_pipeline.media.mp4index import read_video_index
from zencourt_pipeline.media.normalize import normalize_clip
from zencourt_pipeline.media.smart import plan as smart_plan
from zencourt_pipeline.media.smart import render as smart_render
from zencourt_pipeline.media.smart import splicing
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.timeline.assets import Layer, RenderAssets
from zencourt_pipeline.media.timeline.model import (
    Clip,
    ImageElement,
    ImageRole,
    TextElement,
    TextPosition,
    TextRole,
    Timeline,
    Transition,
)

W, H = 320, 180
CLIP_S = 4.0
SOURCES = ["testsrc2", "smptebars", "testsrc"]
# Title and captions over the first second(s), 0.5 s crossfades, fades and the music bed.
TEMPLATE = Template(
    name="smart-test", transition="fade", transition_seconds=0.5, title_seconds=1.0, caption_seconds=1.0,
    overlay_fade_seconds=0.3, music="soft_pad.m4a", fade_in_seconds=0.5, fade_out_seconds=0.5,
)  # fmt: skip


@pytest.fixture(scope="module")
def normalized(tmp_path_factory) -> list[ClipInput]:
    d = tmp_path_factory.mktemp("smart-clips")
    clips = []
    for i, (source, room) in enumerate(zip(SOURCES, ["Living room", "Kitchen", "Deck"], strict=True)):
        src = d / f"src{i}.mp4"
        # Moving content, so a copied frame differs from its neighbours.
        run_ffmpeg(["-f", "lavfi", "-i", f"{source}=s=400x240:r=25:d={CLIP_S}",
                    "-vf", "scroll=h=0.01", "-c:v", "libx264", "-preset", "ultrafast", str(src)])  # fmt: skip
        dest = d / f"clip{i}.mp4"
        normalize_clip(src, dest, width=W, height=H, duration_s=CLIP_S, preset="veryfast")
        clips.append(ClipInput(dest, CLIP_S, room))
    return clips


@pytest.fixture(scope="module")
def renders(normalized, tmp_path_factory):
    d = tmp_path_factory.mktemp("smart-out")
    out = {}
    for strategy in ("smart", "full"):
        out[strategy] = compose_video(
            normalized, d / f"{strategy}.mp4", width=W, height=H, title="Harbour View", template=TEMPLATE,
            thumbnail_dest=d / f"{strategy}.jpg", strategy=strategy,
        )  # fmt: skip
    return out


def _frame(path: Path, index: int) -> np.ndarray:
    """Decoded frame number `index` (exact: selected by number, not by seeking), as YUV bytes."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})", "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert len(raw) == W * H * 3 // 2
    return np.frombuffer(raw, np.uint8).astype(float)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def _decode_errors(path: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    return proc.returncode, proc.stderr


def _timeline(frames: int = 120, clips: int = 3, **kw) -> Timeline:
    fade = Transition(frames=15)
    track = [Clip(source=f"c{i}.mp4", out_frame=frames, transition=fade if i < clips - 1 else None) for i in range(clips)]
    return Timeline(width=W, height=H, clips=track, **kw)


def _text(start: int, frames: int, fade: int = 12) -> TextElement:
    return TextElement(role=TextRole.CAPTION, text="x", start_frame=start, duration_frames=frames, fade_frames=fade,
                       position=TextPosition.LOWER_LEFT)  # fmt: skip


def test_plan_copies_only_untouched_gops():
    plan = _timeline(fade_in_frames=15, fade_out_frames=15, texts=[_text(0, 30), _text(113, 30)])
    assets = RenderAssets(layers=(Layer(Path("t.png"), 0, 0), Layer(Path("c.png"), 0, 0)))
    assert plan.total_frames == 330
    assert smart_plan.dirty_intervals(plan) == [(0, 30), (105, 143), (210, 225), (315, 330)]
    gops = [[(k, k + 30) for k in range(0, 120, 30)]] * 3
    smart = smart_plan.plan_pieces(plan, gops)
    copies = [(p.start, p.end, p.clip, p.clip_start) for p in smart.pieces if p.clip is not None]
    assert copies == [(30, 90, 0, 30), (165, 195, 1, 60), (240, 300, 2, 30)]
    assert [(p.start, p.end) for p in smart.pieces if p.clip is None] == [
        (0, 30),
        (90, 165),
        (195, 240),
        (300, 330),
    ]
    assert smart.copied_frames == 150 and smart.total_frames == 330
    # A render window is the same composition restricted to its frames: clips read from their in points.
    window, window_assets = smart_plan.window_plan(plan, assets, 90, 165)
    assert [(c.source, c.in_frame, c.out_frame) for c in window.clips] == [("c0.mp4", 90, 120), ("c1.mp4", 0, 60)]
    assert window.total_frames == 75 and window.fade_in_frames == 0 and window.music is None
    assert [(t.start_frame, t.end_frame) for t in window.texts] == [(23, 53)]
    assert window_assets.layers == (Layer(Path("c.png"), 0, 0),)
    graph, _, _ = graphs.compose_filter(window, window_assets)
    assert "xfade=transition=fade:duration=0.5:offset=0.5" in graph
    args = graphs.compose_args(window, window_assets, Path("w.mp4"))
    assert args[: args.index("c0.mp4") + 1] == ["-ss", "2.983333", "-t", "1.033333", "-i", "c0.mp4"]
    # Windows never cut a faded overlay; a constant one (a logo) may be split.
    with pytest.raises(smart_plan.SmartUnavailable):
        smart_plan.window_plan(plan, assets, 0, 15)
    logo = plan.model_copy(update={"texts": [], "images": [
        ImageElement(role=ImageRole.LOGO, source="l.png", start_frame=0, duration_frames=330)]})
    logo_assets = RenderAssets(layers=(Layer(Path("l.png"), 0, 0),))
    assert [(i.start_frame, i.end_frame) for i in smart_plan.window_plan(logo, logo_assets, 120, 180)[0].images] == [(0, 60)]
    segmented = smart_plan.plan_segmented(plan)
    assert [p.start for p in segmented.pieces] == [0, 60, 150, 270]  # whole seconds, mid-clip


def test_normalized_clip_index(normalized):
    ix = read_video_index(normalized[0].path)
    assert ix.codec == "avc1" and (ix.width, ix.height) == (W, H)
    assert ix.timescale == graphs.VIDEO_TIMESCALE and ix.frame_delta == graphs.VIDEO_TIMESCALE // 30
    assert ix.sample_count == 120 and ix.keyframes == (0, 30, 60, 90) and ix.closed_gops
    assert ix.encoder_options["stitchable"] == "1" and ix.encoder_options["open_gop"] == "0"
    assert ix.avcc == read_video_index(normalized[2].path).avcc  # same parameter sets for every clip
    assert ix.pix_fmt == "yuv420p" and ix.fps == 30 and ix.duration_s == CLIP_S and not ix.has_audio
    assert not ix.rotated


def test_index_reads_pixel_format_audio_and_rotation(tmp_path):
    ten = tmp_path / "ten.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.4", "-f", "lavfi", "-i", "sine=d=0.4",
                "-pix_fmt", "yuv422p10le", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(ten)])  # fmt: skip
    ix = read_video_index(ten)
    assert ix.pix_fmt == "yuv422p10le" and ix.has_audio and ix.fps == 25 and ix.sample_count == 10
    turned = tmp_path / "turned.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", str(ten), "-c", "copy", str(turned)])
    assert read_video_index(turned).rotated
    with pytest.raises(MediaError):
        read_video_index(_truncated(ten, tmp_path / "cut.mp4"))


def _truncated(src: Path, dest: Path) -> Path:
    dest.write_bytes(src.read_bytes()[:200])
    return dest


def test_smart_output_is_valid_and_matches_full(renders, normalized):
    smart, full = renders["smart"], renders["full"]
    assert smart.strategy == "smart" and full.strategy == "full"
    assert smart.copied_frames == 90 and smart.pieces == 7  # [60,90) of each clip: 3 GOPs copied
    assert smart.planned_duration_s == full.planned_duration_s == pytest.approx(11.0)
    code, errors = _decode_errors(smart.path)
    assert code == 0 and errors == ""
    s_info, f_info = probe(smart.path, count_frames=True), probe(full.path, count_frames=True)
    assert s_info.frame_count == f_info.frame_count == 330
    for info in (s_info, f_info):
        assert info.codec == "h264" and (info.width, info.height) == (W, H) and info.fps == 30
        assert info.pix_fmt == "yuv420p" and info.has_audio and info.audio_codec == "aac"
        assert abs(info.duration - smart.planned_duration_s) <= 0.1
    # Copied spans are the normalized clips' own frames, bit for bit, and close to the full render.
    starts = [0, 105, 210]
    for clip, start in zip(normalized, starts, strict=True):
        for local in (60, 75, 89):
            copied = _frame(smart.path, start + local)
            assert _psnr(copied, _frame(clip.path, local)) == 99.0
            assert _psnr(copied, _frame(full.path, start + local)) > 30
    # Re-encoded spans (title, crossfade, caption) show the same picture as the full render.
    for index in (15, 110, 320):
        assert _psnr(_frame(smart.path, index), _frame(full.path, index)) > 30
    with Image.open(smart.thumbnail_path) as img:
        assert img.format == "JPEG" and img.size == (W, H)
    assert sorted(p.name for p in smart.path.parent.iterdir()) == [
        "full.jpg",
        "full.mp4",
        "smart.jpg",
        "smart.mp4",
    ]


def test_auto_uses_smart_only_when_it_pays_off(normalized, tmp_path):
    wordy = TEMPLATE.model_copy(update={"caption_seconds": 1.5})
    auto = compose_video(normalized, tmp_path / "a.mp4", width=W, height=H, title="T", template=wordy)
    # 60 of 330 frames copyable is estimated to cost more than 90% of a full render.
    assert auto.strategy == "full" and "60 of 330 frames can be stream-copied" in auto.strategy_note
    quiet = TEMPLATE.model_copy(update={"caption_seconds": 0.0, "title_seconds": 0.0, "fade_in_seconds": 0.0})
    auto = compose_video(normalized, tmp_path / "b.mp4", width=W, height=H, title="T", template=quiet)
    assert auto.strategy == "smart" and auto.copied_frames == 210
    assert probe(auto.path, count_frames=True).frame_count == 330


def _plain_clip(path: Path, x264_params: str) -> Path:
    run_ffmpeg([
        "-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r=30:d={CLIP_S}", "-vf", "format=yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-x264-params", x264_params, "-an", str(path),
    ])  # fmt: skip
    return path


@pytest.mark.parametrize("params", ["open-gop=1:stitchable=1", "keyint=60:stitchable=0"])
def test_non_qualifying_clips_fall_back_to_full(normalized, tmp_path, params):
    odd = ClipInput(_plain_clip(tmp_path / "odd.mp4", params), CLIP_S, "Odd")
    clips = [normalized[0], odd, normalized[2]]
    quiet = TEMPLATE.model_copy(update={"caption_seconds": 0.0, "title_seconds": 0.0})
    result = compose_video(clips, tmp_path / "o.mp4", width=W, height=H, title=None, template=quiet)
    assert result.strategy == "full" and "clip 1 (odd.mp4)" in result.strategy_note
    assert probe(result.path, count_frames=True).frame_count == 330
    with pytest.raises(MediaError) as err:
        compose_video(
            clips, tmp_path / "s.mp4", width=W, height=H, title=None, template=quiet, strategy="smart"
        )
    assert err.value.code == "COMPOSITION_FAILED" and "smart rendering failed" in err.value.message
    assert not (tmp_path / "s.mp4").exists()


def test_windowed_full_render_when_one_graph_would_use_too_much_memory(normalized, tmp_path, monkeypatch):
    monkeypatch.setattr(smart_render, "MEMORY_BUDGET_MB", 1)
    result = compose_video(
        normalized, tmp_path / "w.mp4", width=W, height=H, title="T", template=TEMPLATE, strategy="full"
    )
    assert result.strategy == "full" and result.pieces == 4
    code, errors = _decode_errors(result.path)
    assert code == 0 and errors == ""
    info = probe(result.path, count_frames=True)
    assert info.frame_count == 330 and info.has_audio
    # Keyframes stay on the output's one-second grid, as in the one-graph render.
    assert read_video_index(result.path).keyframes == tuple(range(0, 330, 30))


def test_logo_overlay_from_template(normalized, tmp_path, monkeypatch):
    bundled = tmp_path / "templates"
    bundled.mkdir()
    (bundled / "soft_pad.m4a").write_bytes((templates.TEMPLATES_DIR / "soft_pad.m4a").read_bytes())
    Image.new("RGBA", (200, 100), (255, 0, 0, 255)).save(bundled / "logo.png")
    monkeypatch.setattr(templates, "TEMPLATES_DIR", bundled)
    branded = Template(name="branded", music="soft_pad.m4a", logo="logo.png", logo_position="top-left",
                       logo_width=0.25, logo_opacity=1.0, caption_seconds=0.0, title_seconds=0.0)  # fmt: skip
    result = compose_video(
        normalized[:2], tmp_path / "l.mp4", width=W, height=H, title=None, template=branded
    )
    # the logo is a bug over the first `logo_seconds` (3 s), not over every frame: the rest is copied
    assert result.strategy == "smart" and result.copied_frames > 0
    frame = _frame(result.path, 60)[: W * H].reshape(H, W)
    assert abs(frame[20:40, 20:80].mean() - 63) < 6  # BT.709 luma of pure red, top left
    assert abs(frame[150:170, 200:300].mean() - 63) > 6
    later = _frame(result.path, 150)[: W * H].reshape(H, W)
    assert abs(later[20:40, 20:80].mean() - 63) > 6  # gone after the bug's window
    with pytest.raises(ValueError):
        Template(name="x", logo="../logo.png")


def test_unknown_strategy(normalized, tmp_path):
    with pytest.raises(MediaError) as err:
        compose_video(normalized, tmp_path / "x.mp4", width=W, height=H, title=None, template=TEMPLATE,
                      strategy="fast")  # fmt: skip
    assert err.value.code == "INVALID_INPUT"
    assert compose.STRATEGIES == ("auto", "smart", "full")


def test_smart_with_end_card_dip_to_black_and_no_music(normalized, tmp_path):
    card = Template(
        name="card", transition="fadeblack", transition_seconds=0.8, title_seconds=0.0, caption_seconds=0.0,
        music=None, fade_in_seconds=0.0, fade_out_seconds=0.5, end_card_seconds=1.5, end_card_text="Call us",
    )  # fmt: skip
    result = compose_video(
        normalized, tmp_path / "c.mp4", width=W, height=H, title="Loft", template=card, strategy="smart"
    )
    # 3 x 120 frames - 2 x 24 (transitions) + 45 (card) = 357; 90 + 60 + 60 copied.
    assert result.strategy == "smart" and result.copied_frames == 210
    assert result.planned_duration_s == pytest.approx(357 / 30)
    code, errors = _decode_errors(result.path)
    assert code == 0 and errors == ""
    info = probe(result.path, count_frames=True)
    assert info.frame_count == 357 and not info.has_audio
    end = _frame(result.path, 330)[: W * H]
    assert end.std() > 5 and end.mean() < 60  # the dark end card with light text


def test_keyframes_where_the_timeline_cuts_make_every_unchanged_frame_copyable(tmp_path):
    """Clips normalized with `clip_keyframes` for the template: smart rendering copies exactly the
    frames no transition, overlay or fade touches, bit for bit, and the result decodes clean."""
    sources = []
    for i, source in enumerate(SOURCES):
        src = tmp_path / f"src{i}.mp4"
        run_ffmpeg(["-f", "lavfi", "-i", f"{source}=s=400x240:r=30:d={CLIP_S}", "-vf", "scroll=h=0.01",
                    "-c:v", "libx264", "-preset", "ultrafast", str(src)])  # fmt: skip
        sources.append(ClipInput(src, CLIP_S, ["Living room", "Kitchen", "Deck"][i]))
    cuts = compose.clip_keyframes(sources, width=W, height=H, title="Harbour View", template=TEMPLATE)
    # Title [0, 1 s) then the caption [1, 2 s) on clip 0; captions [0.25, 1.25 s) on the others;
    # crossfades [3.5, 4 s); the fade to black over the last 0.5 s.
    assert cuts == [[60, 105], [38, 105], [38, 105]]
    clips = []
    for i, (clip, frames) in enumerate(zip(sources, cuts, strict=True)):
        dest = tmp_path / f"clip{i}.mp4"
        normalize_clip(clip.path, dest, width=W, height=H, duration_s=CLIP_S, keyframes=frames)
        # The extra keyframes, and one a second after each keyframe (x264's -g): GOPs <= 1 s.
        assert read_video_index(dest).keyframes == ((0, 30, 60, 90, 105) if i == 0 else (0, 30, 38, 68, 98, 105))
        clips.append(ClipInput(dest, CLIP_S, clip.caption))
    smart = compose_video(
        clips, tmp_path / "smart.mp4", width=W, height=H, title="Harbour View", template=TEMPLATE, strategy="smart"
    )  # fmt: skip
    dirty = smart_plan.dirty_intervals(
        compose.plan_composition(clips, width=W, height=H, title="Harbour View", template=TEMPLATE,
                                 work=tmp_path / "plan")[0]
    )  # fmt: skip
    assert smart.copied_frames == 330 - sum(b - a for a, b in dirty) == 45 + 67 + 67
    code, errors = _decode_errors(smart.path)
    assert code == 0 and errors == ""
    assert probe(smart.path, count_frames=True).frame_count == 330
    for clip, start, local in ((clips[0], 0, 60), (clips[1], 105, 38), (clips[2], 210, 104), (clips[2], 210, 38)):
        assert _psnr(_frame(smart.path, start + local), _frame(clip.path, local)) == 99.0


def test_windows_read_the_stream_copied_cuts_instead_of_seeking():
    plan = _timeline(clips=2)
    window, assets = smart_plan.window_plan(plan, RenderAssets(), 90, 150, {(0, 90): Path("a_from_90.mp4")})
    assert [(c.source, c.in_frame) for c in window.clips] == [("a_from_90.mp4", 0), ("c1.mp4", 0)]
    args = graphs.compose_args(window, assets, Path("w.mp4"))
    assert "-ss" not in args and args[: args.index("a_from_90.mp4") + 1] == ["-t", "1.033333", "-i", "a_from_90.mp4"]
    # Without a cut starting at the window's frame, the clip is read from its in point (a seek).
    assert [c.in_frame for c in smart_plan.window_plan(plan, RenderAssets(), 90, 150)[0].clips] == [90, 0]


def test_concat_script_gives_exact_piece_durations():
    script = splicing.concat_list([Path("a.mp4"), Path("it's.mp4")], [53, 30], 30)
    assert script == "ffconcat version 1.0\nfile 'a.mp4'\nduration 1.766667\nfile 'it'\\''s.mp4'\nduration 1.000000\n"


def test_a_smart_render_carries_the_same_narrated_mix_as_the_full_graph(normalized, tmp_path):
    """The windows are video only; the audio (music ducked under the narration, the mix normalized)
    is encoded once from the timeline and joined: the same sound as the one-graph render."""
    from zencourt_pipeline.media import loudness
    from zencourt_pipeline.media.narration import analyze_narration
    from zencourt_pipeline_tests.media.test_narration import KINDS, make_voice, music_level_db

    voice = make_voice(tmp_path / "voice.m4a", codec=KINDS["m4a"], seconds=6.0, speech=((0.5, 2.5), (4.5, 5.5)))
    narration = analyze_narration(voice)
    out = {
        strategy: compose_video(normalized, tmp_path / f"{strategy}.mp4", width=W, height=H, title="Harbour View",
                                template=TEMPLATE, strategy=strategy, narration=narration)  # fmt: skip
        for strategy in ("smart", "full")
    }
    assert out["smart"].strategy == "smart" and out["smart"].copied_frames > 0
    assert out["smart"].timeline.narration is not None and out["smart"].timeline == out["full"].timeline
    figures = {}
    for strategy, result in out.items():
        measured = loudness.measure(result.path)
        ducked = music_level_db(result.path, 3.2, 4.2) - music_level_db(result.path, 1.0, 2.3)
        figures[strategy] = (measured.integrated_lufs, ducked)
        assert abs(measured.integrated_lufs - loudness.TARGET_LUFS) <= loudness.TOLERANCE_LU, (strategy, measured)
        assert measured.true_peak_dbtp <= loudness.MAX_TRUE_PEAK_DBTP and ducked >= 10.0, (strategy, measured, ducked)
    print(f"smart vs full: {figures}")
    assert abs(figures["smart"][0] - figures["full"][0]) < 0.3 and abs(figures["smart"][1] - figures["full"][1]) < 1.0
