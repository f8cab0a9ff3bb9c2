"""Burned-in texts checked in the rendered video (issue 14 point 3): at each text's time, the decoded
frame differs from the same timeline rendered without texts inside the text's box (where the
timeline puts it) and hardly anywhere else."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.media import graphs
from zencourt_pipeline.media.compose import render_timeline
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, run_ffmpeg
from zencourt_pipeline.media.templates import load_template
from zencourt_pipeline.media.timeline.assets import place_text
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.model import TextRole

W, H = 640, 360
FACTS = ListingFacts(address="12 Oak Lane", price=1250000, beds=3, baths=2, sqft=1850, agent_name="Jane Doe")


def _clip(path: Path, source: str, seconds: float) -> Path:
    run_ffmpeg([
        "-f", "lavfi", "-i", f"{source}=s={W}x{H}:r=30", "-t", str(seconds),
        "-vf", "format=yuv420p", *graphs.x264_args(preset="ultrafast", crf=26, fps=30), "-an", str(path),
    ])  # fmt: skip
    return path


def _frame(path: Path, frame: int) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{frame})", "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(H, W).astype(float)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    d = tmp_path_factory.mktemp("caption-frames")
    clips = [
        ClipInput(_clip(d / f"c{i}.mp4", src, 3.0), 3.0, room=room)
        for i, (src, room) in enumerate([("testsrc2", "Kitchen"), ("smptebars", "Living room"), ("testsrc", "Garden")])
    ]  # fmt: skip
    timeline = build_timeline(clips, width=W, height=H, title="Charming home", template=load_template("showcase"), facts=FACTS)
    bare = timeline.model_copy(update={"texts": []})
    with_texts = render_timeline(timeline, d / "texts.mp4", strategy="full", preset="ultrafast", work_dir=d / "w1")
    without = render_timeline(bare, d / "bare.mp4", strategy="full", preset="ultrafast", work_dir=d / "w2")
    return timeline, with_texts.path, without.path


def test_each_text_shows_where_the_timeline_puts_it(rendered):
    timeline, with_texts, without = rendered
    roles = {t.role for t in timeline.texts}
    assert {TextRole.TITLE, TextRole.CAPTION, TextRole.INTRO, TextRole.LOWER_THIRD, TextRole.OUTRO} <= roles
    checked = []
    for text in timeline.texts:
        frame = text.start_frame + text.duration_frames // 2
        box = place_text(text, W, H)
        diff = np.abs(_frame(with_texts, frame) - _frame(without, frame))
        inside = diff[box.y : box.y + box.height, box.x : box.x + box.width].mean()
        shown = np.zeros((H, W), bool)
        for other in timeline.texts:  # every text on screen at that frame
            if other.start_frame <= frame < other.end_frame:
                b = place_text(other, W, H)
                shown[max(0, b.y - 2) : b.y + b.height + 2, max(0, b.x - 2) : b.x + b.width + 2] = True
        outside = diff[~shown].mean()
        assert inside > 15 and outside < 3, (text.role, text.text, inside, outside)
        checked.append(text.role)
    assert len(checked) == len(timeline.texts)


def test_no_text_shows_once_it_has_ended(rendered):
    timeline, with_texts, without = rendered
    lower = next(t for t in timeline.texts if t.role == TextRole.LOWER_THIRD)
    frame = lower.end_frame + 3  # past its fade-out
    if any(t.start_frame <= frame < t.end_frame for t in timeline.texts if t is not lower):
        pytest.skip("another text is on screen then")
    diff = np.abs(_frame(with_texts, frame) - _frame(without, frame))
    assert diff.mean() < 3
