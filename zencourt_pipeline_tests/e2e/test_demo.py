"""`zencourt demo` as a user runs it: a fresh data dir, the console script, the printed paths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from zencourt_pipeline.media.ffmpeg import probe

BIN = Path(sys.executable).parent


def test_zencourt_demo_composes_the_sample_listing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME", "STORAGE_BACKEND")}
    env["ZENCOURT_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [str(BIN / "zencourt"), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]
    video = Path(re.search(r"^video: (.+)$", proc.stdout, re.M).group(1))
    thumbnail = Path(re.search(r"^thumbnail: (.+)$", proc.stdout, re.M).group(1))
    assert thumbnail.read_bytes()[:3] == b"\xff\xd8\xff"
    info = probe(video, count_frames=True)
    assert (info.codec, info.width, info.height, info.fps) == ("h264", 1920, 1080, 30.0)  # the primary output
    # six 5 s clips, five 0.5 s crossfades
    assert abs(info.duration - (6 * 5 - 5 * 0.5)) <= 0.5
    # every frame at 30 fps: the container's duration is the longer track's, and the AAC track is
    # 21 ms (its priming) longer than the video since outputs carry no edit list: within one frame
    assert abs(info.frame_count - info.duration * 30) < 1
    assert "clip Exterior: completed via local" in proc.stdout  # progress was shown
    # the default four outputs (issue 15): 16:9 and 9:16, each branded and MLS-unbranded
    outputs = dict(re.findall(r"^output (\S+): (.+)$", proc.stdout, re.M))
    assert sorted(outputs) == [
        "landscape-1920x1080-branded", "landscape-1920x1080-unbranded", "vertical-1080x1920-branded",
        "vertical-1080x1920-unbranded",
    ]  # fmt: skip
    assert Path(outputs["landscape-1920x1080-branded"]) == video
    for name, path in outputs.items():
        assert (probe(Path(path)).width, probe(Path(path)).height) == ((1920, 1080) if name.startswith("landscape") else (1080, 1920))


def test_clip_first_demo_publishes_every_clip_and_tells_the_web_app_once(tmp_path):
    """ENABLE_FINAL_COMPOSITION=false end to end (issue 15 point 6): the batch completes with its six
    clips published (file, thumbnail, one `clip.completed` each) and no video; `batch.completed` once."""
    from zencourt_pipeline.config import Settings
    from zencourt_pipeline.db.database import AppDatabase

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME", "STORAGE_BACKEND")}
    env["ZENCOURT_DATA_DIR"] = str(tmp_path / "data")
    env["ENABLE_FINAL_COMPOSITION"] = "false"
    proc = subprocess.run(
        [str(BIN / "zencourt"), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no listing video: ENABLE_FINAL_COMPOSITION is off (clip-first)" in proc.stdout
    assert not re.search(r"^(video|output \S+): ", proc.stdout, re.M)  # nothing was composed
    clips = re.findall(r"^clip (.+?): (\S+) \(thumbnail (\S+)\)$", proc.stdout, re.M)
    assert len(clips) == 6, proc.stdout[-3000:]
    for _, clip, thumbnail in clips:
        info = probe(Path(clip))
        assert (info.codec, info.fps) == ("h264", 30.0) and abs(info.duration - 5) < 0.1
        assert Path(thumbnail).read_bytes()[:3] == b"\xff\xd8\xff"
    db = AppDatabase.connect(Settings.from_env(env).resolved_database_url)
    [batch_id] = set(re.findall(r"^batch (\S+): completed", proc.stdout, re.M))
    batch = db.batches.get_batch(batch_id)
    assert batch.status == "completed" and batch.video_url is None
    events = [e.event for e in db.outbox.rows(batch_id)]
    assert events.count("clip.completed") == 6 and events.count("batch.completed") == 1, events
