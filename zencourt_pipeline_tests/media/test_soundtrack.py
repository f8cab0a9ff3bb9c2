"""media/soundtrack.py: a timeline's audio mixed, loudness-normalized and encoded once, then muxed by
stream copy into every render of a timeline with the same mix (one-graph, windowed and smart)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zencourt_pipeline.media import graphs, loudness, soundtrack
from zencourt_pipeline.media.compose import render_timeline
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe
from zencourt_pipeline.media.smart import render as smart_render
from zencourt_pipeline.media.soundtrack import make_soundtrack, mix_key
from zencourt_pipeline.media.timeline.assets import render_assets
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline_tests.media.smart.test_render import CLIP_S, TEMPLATE, H, W, normalized  # noqa: F401


def _timeline(clips: list[ClipInput], width: int = W, height: int = H, **kw):
    return build_timeline(clips, width=width, height=height, title="Harbour View", template=TEMPLATE, **kw)


def audio_md5(path: Path) -> str:
    """The MD5 of the audio packets of `path` (stream copy: equal when the audio was muxed as it is)."""
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy", "-f", "md5", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return out.decode().strip()


def test_the_mix_key_is_the_audio_not_the_size_or_overlays(normalized):  # noqa: F811
    landscape, vertical = _timeline(normalized), _timeline(normalized, H, W)
    assert mix_key(landscape) is not None and mix_key(landscape) == mix_key(vertical)
    shorter = _timeline(normalized[:2])
    assert mix_key(shorter) != mix_key(landscape)
    silent = build_timeline(normalized, width=W, height=H, title=None, template=TEMPLATE.model_copy(update={"music": None}))
    assert mix_key(silent) is None


@pytest.mark.parametrize("strategy", ["full", "windowed", "smart"])
def test_a_render_given_the_soundtrack_muxes_it_as_it_is_and_measures_nothing(
    normalized, tmp_path, monkeypatch, strategy  # noqa: F811
):
    tl = _timeline(normalized)
    made = make_soundtrack(tl, tmp_path / "mix.m4a")
    assert made is not None and made.fits(tl) and made.loudnorm.startswith("loudnorm=")

    def no_measure(*args, **kwargs):
        raise AssertionError("the soundtrack's mix was measured again")

    monkeypatch.setattr(soundtrack.loudness, "measure_bed", no_measure)
    if strategy == "windowed":
        monkeypatch.setattr(smart_render, "MEMORY_BUDGET_MB", 1)
    result = render_timeline(
        tl, tmp_path / "out.mp4", work_dir=tmp_path / "work", soundtrack=made,
        strategy="full" if strategy != "smart" else "smart",
    )  # fmt: skip
    assert result.pieces > 1 if strategy != "full" else result.pieces == 1
    assert audio_md5(result.path) == audio_md5(made.path)
    info = probe(result.path)
    assert (info.audio_codec, info.audio_sample_rate, info.audio_channels) == ("aac", 48000, "stereo")
    measured = loudness.measure(result.path)
    assert abs(measured.integrated_lufs - loudness.TARGET_LUFS) <= loudness.TOLERANCE_LU, measured
    assert measured.true_peak_dbtp <= loudness.MAX_TRUE_PEAK_DBTP, measured
    assert abs(result.duration_s - tl.duration_s) < 0.05 and tl.duration_s > 2 * CLIP_S


def test_a_soundtrack_of_another_mix_is_refused(normalized, tmp_path):  # noqa: F811
    made = make_soundtrack(_timeline(normalized[:2]), tmp_path / "short.m4a")
    with pytest.raises(MediaError, match="another mix"):
        render_timeline(_timeline(normalized), tmp_path / "out.mp4", soundtrack=made)


def test_the_graph_copies_a_soundtrack_instead_of_mixing(normalized, tmp_path):  # noqa: F811
    tl = _timeline(normalized)
    assets = render_assets(tl, tmp_path).with_inputs(rescale=tuple(False for _ in tl.clips), soundtrack=tmp_path / "mix.m4a")
    args = graphs.compose_args(tl, assets, tmp_path / "o.mp4")
    graph = args[args.index("-filter_complex") + 1]
    inputs = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
    assert "loudnorm" not in graph and "amix" not in graph and "[aout]" not in graph
    assert inputs[-1] == str(tmp_path / "mix.m4a") and "-stream_loop" not in args
    at = args.index("-c:a")
    assert args[at - 2 : at + 2] == ["-map", f"{len(inputs) - 1}:a:0", "-c:a", "copy"]
    assert "-t" not in args[args.index("-filter_complex") :]  # muxed whole: the graph's trim bounds the video
