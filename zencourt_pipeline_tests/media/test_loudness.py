"""media/loudness.py: the two-pass R128 bed meets -14 LUFS +-1 / <= -1 dBTP; ebur128 measurement."""

from __future__ import annotations

import time
from pathlib import Path

from zencourt_pipeline.media import loudness, mix
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.templates import load_template
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline

NO_ASSETS = RenderAssets()


def _timeline():
    template = load_template("default").model_copy(update={"title_seconds": 0, "caption_seconds": 0})
    return build_timeline([ClipInput(Path("c0.mp4"), 12.0)], width=1280, height=720, title=None, template=template)


def test_the_bundled_music_bed_is_brought_to_the_target_in_two_passes(tmp_path):
    plan = _timeline()
    untouched = tmp_path / "bed-before.m4a"
    run_ffmpeg(mix.audio_args(plan, NO_ASSETS, untouched))
    before = loudness.measure(untouched)
    assert before.integrated_lufs < loudness.TARGET_LUFS - 3  # the template's bed is quiet (~ -20.7)

    started = time.perf_counter()
    second = loudness.measure_bed(mix.audio_inputs(plan), mix.audio_chain(plan, NO_ASSETS, 0))
    first_pass_s = time.perf_counter() - started
    assert second.startswith("loudnorm=I=-14:TP=-1.5:LRA=11:measured_I=") and second.endswith(
        ":linear=true,aresample=48000"
    )
    assert first_pass_s < 10  # audio only: a fraction of the video encode
    normalized = tmp_path / "bed-after.m4a"
    run_ffmpeg(mix.audio_args(plan, RenderAssets(loudnorm=second), normalized))
    after = loudness.measure(normalized)
    assert abs(after.integrated_lufs - loudness.TARGET_LUFS) <= loudness.TOLERANCE_LU, after
    assert after.true_peak_dbtp <= loudness.MAX_TRUE_PEAK_DBTP, after
    assert "loudnorm" in mix.audio_chain(
        plan, RenderAssets(loudnorm=second), 3
    ) and "loudnorm" not in mix.audio_chain(plan, NO_ASSETS, 3)
