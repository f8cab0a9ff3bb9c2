"""A batch with facts, per-job captions and a template with a lower third composes; the published
SRT and WebVTT sidecars carry the merged texts at the timeline's times (issue 14 points 2 and 3)."""

from __future__ import annotations

import json

import srt
import webvtt

from zencourt_pipeline.media.timeline.model import TextRole, Timeline
from zencourt_pipeline.pipeline.composition import compose_batch
from zencourt_pipeline.pipeline.normalize import normalize_outputs
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline_tests.batches import one_output
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.server import sample_mp4

FACTS = {"address": "12 Oak Lane", "price": 1250000, "beds": 3, "baths": 2, "sqft": 1850, "agentName": "Jane Doe"}


def test_facts_and_captions_reach_the_video_and_its_sidecars(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    batch, jobs = make_batch("fx", n_jobs=2, template="showcase", title="Charming home", facts=json.dumps(FACTS),
                             outputs=one_output(1920, 1080))  # one 1080p output: the texts at full size
    jobs[0].update(caption="{{beds}}-bed kitchen", transition="circleopen")
    jobs[1].update(caption=None, transition=None)
    sqlite_db.batches.insert_batch(batch, jobs)
    sqlite_db.batches.start_batch("fx")
    for job in ("fx-0", "fx-1"):
        storage.put_file(f"batches/fx/generated/{job}.mp4", sample_mp4(1280, 720), "video/mp4")
        sqlite_db.batches.update_job(job, raw_clip_key=f"batches/fx/generated/{job}.mp4")
    work = tmp_path / "work"
    work.mkdir()
    normalize_outputs(sqlite_db, storage, sqlite_db.batches.get_batch("fx"), sqlite_db.batches.get_jobs("fx"), work)
    report = compose_batch(sqlite_db, storage, sqlite_db.batches.get_batch("fx"), sqlite_db.batches.get_jobs("fx"), work)
    assert report.status == "completed", report.error
    stem = report.video_key.removesuffix(".mp4")
    assert stem.endswith("listing-landscape-1920x1080-branded-showcase")
    timeline = Timeline.from_json(storage.get_file(stem + ".timeline.json", tmp_path / "t.json").read_text(encoding="utf-8"))
    texts = {t.role: t.text for t in timeline.texts if t.role != TextRole.CAPTION}
    assert texts == {
        TextRole.TITLE: "Charming home", TextRole.INTRO: "12 Oak Lane",
        TextRole.LOWER_THIRD: "$1,250,000 · 3 bd · 2 ba · 1,850 sq ft", TextRole.OUTRO: "Listed by Jane Doe",
    }  # fmt: skip
    assert [t.text for t in timeline.texts if t.role == TextRole.CAPTION] == ["3-bed kitchen", "Room 1"]
    assert timeline.clips[0].transition.kind == "circleopen"
    subs = list(srt.parse(storage.get_file(stem + ".srt", tmp_path / "t.srt").read_text(encoding="utf-8")))
    vtt = webvtt.read(str(storage.get_file(stem + ".vtt", tmp_path / "t.vtt")))
    ordered = sorted(timeline.texts, key=lambda t: t.start_frame)
    assert [s.content for s in subs] == [c.text for c in vtt.captions] == [t.text for t in ordered]
    for sub, text in zip(subs, ordered, strict=True):
        assert round(sub.start.total_seconds() * 30) == text.start_frame
        assert round(sub.end.total_seconds() * 30) == text.end_frame
