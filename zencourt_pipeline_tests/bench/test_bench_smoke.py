"""`python -m zencourt_pipeline.bench` end to end on tiny inputs (ZENCOURT_BENCH_QUICK=1)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

REQUIRED = [
    "compose_720p_s",
    "compose_ref_ffmpeg_720p_s",
    "compose_ratio_vs_ref",
    "compose_ratio_vs_moviepy",
    "compose_smart_720p_s",
    "compose_smart_ratio_vs_ref",
    "compose_moviepy_720p_s",
    "normalize_s",
    "normalize_ref_s",
    "normalize_ratio_vs_ref",
    "compose_1080x1920_60s_peak_rss_mb",
    "compose_720p_peak_rss_mb",
    "local_generator_5s_720p_s",
    "local_generator_realtime_factor",
    "sensor_tick_pending_batches_s",
    "sensor_tick_clip_completions_s",
    "sensor_tick_300_open_batches_s",
    "partitions_after_year",
    "partitions_unbounded",
    "partition_retention_tick_s",
    "asset_page_query_s",
    "asset_page_query_unbounded_s",
    "asset_page_query_ratio_vs_unbounded",
    "outputs_4_ratio_vs_one_full",
    "unbranded_ratio_vs_full",
    "outputs_4_60s_peak_rss_mb",
]
LINE = re.compile(r"^([a-z0-9_]+): (-?\d+(?:\.\d+)?)$")


def test_bench_quick_mode_prints_every_figure(tmp_path):
    env = {**os.environ, "ZENCOURT_BENCH_QUICK": "1", "ZENCOURT_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "zencourt_pipeline.bench"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = {}
    for line in proc.stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a `name: number` line: {line!r}"
        figures[match.group(1)] = float(match.group(2))
    missing = [name for name in REQUIRED if name not in figures]
    assert not missing, missing
    assert all(math.isfinite(v) for v in figures.values())
    assert figures["bench_quick"] == 1
    # The smart render of the bench timeline really is smart, decodes cleanly, has every frame.
    assert figures["compose_smart_used"] == 1
    assert figures["compose_smart_decodes_clean"] == 1
    assert figures["compose_smart_frames_match_full"] == 1
    assert figures["compose_smart_frames"] == figures["compose_ref_frames"]
    # 20 days of 20 batches under a 7-day retention: the last 7 days' partitions are left
    assert (figures["partitions_after_year"], figures["partitions_unbounded"]) == (7 * 20, 20 * 20)
    assert list(tmp_path.iterdir()) == []  # the bench cleans up its inputs
