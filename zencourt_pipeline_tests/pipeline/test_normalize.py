"""Keyframe planning for a batch's clips (pure: rows in, frames out)."""

from __future__ import annotations

from zencourt_pipeline.db.records import Batch, Job, JobStatus
from zencourt_pipeline.pipeline.normalize import planned_keyframes


def _job(index: int, status: str, raw: str | None, video: str | None = None) -> Job:
    return Job(id=f"j{index}", batch_id="b", image_url="https://example.com/p.jpg", status=JobStatus(status),
               raw_clip_key=raw, video_url=video, duration_seconds=5, room_name=f"Room {index}")  # fmt: skip


def _batch(template: str, title: str | None) -> Batch:
    return Batch(id="b", listing_id="L", template=template, title=title)


def test_keyframes_follow_the_clips_the_batch_will_compose():
    jobs = [
        _job(0, "failed", None),  # never composed: the next clip opens the video
        _job(1, "processing", "raw/1"),
        _job(2, "completed", "raw/2", "s3://bucket/clip2.mp4"),  # already normalized (a regeneration)
        _job(3, "processing", "raw/3"),
        _job(4, "processing", None),  # no clip yet
    ]
    batch = _batch("default", "Loft")
    frames = planned_keyframes(batch, jobs, width=1280, height=720)
    # default: 3 s title + caption cover the whole first clip (nothing to copy, no extra keyframe);
    # later clips: crossfade + caption end at frame 83, the next crossfade starts at 135, and the
    # last clip's 1 s fade to black starts at 120.
    assert frames == {"j1": [], "j2": [83, 135], "j3": [83, 120]}


def test_no_keyframes_when_the_composition_cannot_be_planned():
    jobs = [_job(0, "processing", "raw/0")]
    assert planned_keyframes(_batch("no-such-template", None), jobs, width=1280, height=720) == {}
    assert planned_keyframes(_batch("default", None), [_job(0, "failed", None)], width=1280, height=720) == {}
