"""media/loudness.py: the two-pass R128 bed meets -14 LUFS +-1 / <= -1 dBTP; ebur128 measurement."""

from __future__ import annotations

import time
from pathlib import Path

from zencourt_pipeline.media import graphs, loudness
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.templates import load_template


def _plan(**fields) -> graphs.ComposePlan:
    template = load_template("default")
    return graphs.ComposePlan(clips=[Path("c0.mp4")], durations=[12.0], width=1280, height=720,
                              music=template.music_path, music_volume=template.music_volume,
                              fade_in_s=0.5, fade_out_s=1.0, **fields)  # fmt: skip


def test_the_bundled_music_bed_is_brought_to_the_target_in_two_passes(tmp_path):
    plan = _plan()
    untouched = tmp_path / "bed-before.m4a"
    run_ffmpeg(graphs.music_args(plan, untouched))
    before = loudness.measure(untouched)
    assert before.integrated_lufs < loudness.TARGET_LUFS - 3  # the template's bed is quiet (~ -20.7)

    started = time.perf_counter()
    second = loudness.measure_bed(graphs.music_input(plan), graphs.music_chain(plan, 0))
    first_pass_s = time.perf_counter() - started
    assert second.startswith("loudnorm=I=-14:TP=-1.5:LRA=11:measured_I=") and second.endswith(
        ":linear=true,aresample=48000"
    )
    assert first_pass_s < 10  # audio only: a fraction of the video encode
    normalized = tmp_path / "bed-after.m4a"
    run_ffmpeg(graphs.music_args(graphs.ComposePlan(**{**plan.__dict__, "loudnorm": second}), normalized))
    after = loudness.measure(normalized)
    assert abs(after.integrated_lufs - loudness.TARGET_LUFS) <= loudness.TOLERANCE_LU, after
    assert after.true_peak_dbtp <= loudness.MAX_TRUE_PEAK_DBTP, after
    assert "loudnorm" in graphs.music_chain(
        _plan(loudnorm=second), 3
    ) and "loudnorm" not in graphs.music_chain(plan, 3)
