"""SRT and WebVTT sidecars of a timeline (issue 14 point 3), read back with real subtitle parsers."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import srt
import webvtt

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.media.templates import load_template
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.subtitles import cues, frame_ms, to_srt, to_vtt

FACTS = ListingFacts(address="12 Oak Lane", price=1250000, beds=3, baths=2, sqft=1850, agent_name="Jane <Doe> & Co")


def _timeline(name: str = "showcase"):
    clips = [ClipInput(Path(f"j{i}"), 5, room=room) for i, room in enumerate(["Kitchen", "Living room", "Garden"])]
    return build_timeline(clips, width=1280, height=720, title="Charming home", template=load_template(name), facts=FACTS)


def test_frames_become_milliseconds():
    assert [frame_ms(f, 30) for f in (0, 1, 2, 3, 30, 105)] == [0, 33, 67, 100, 1000, 3500]
    assert frame_ms(1, 24) == 42


def test_srt_parses_and_matches_the_timeline():
    timeline = _timeline()
    parsed = list(srt.parse(to_srt(timeline)))
    texts = sorted(timeline.texts, key=lambda t: t.start_frame)
    assert len(parsed) == len(timeline.texts) >= 6
    for sub, text in zip(parsed, texts, strict=True):
        assert sub.content == text.text
        assert abs(sub.start - timedelta(seconds=text.start_frame / 30)) <= timedelta(milliseconds=1)
        assert abs(sub.end - timedelta(seconds=text.end_frame / 30)) <= timedelta(milliseconds=1)
    assert "$1,250,000 · 3 bd · 2 ba · 1,850 sq ft" in [s.content for s in parsed]


def test_vtt_parses_and_matches_the_timeline():
    timeline = _timeline()
    parsed = webvtt.from_buffer(io.StringIO(to_vtt(timeline)))
    expected = cues(timeline)
    assert len(parsed.captions) == len(expected)
    for caption, cue in zip(parsed.captions, expected, strict=True):
        assert caption.start_in_seconds * 1000 + caption.start_time.milliseconds == cue.start_ms
        assert caption.end_in_seconds * 1000 + caption.end_time.milliseconds == cue.end_ms
    raw = [c.raw_text for c in parsed.captions]
    assert "Listed by Jane &lt;Doe&gt; &amp; Co" in raw  # escaped, so a player shows the text as given
    assert [c.text for c in parsed.captions][0] in {"Charming home", "12 Oak Lane"}


def test_a_timeline_without_texts_has_empty_sidecars():
    timeline = build_timeline([ClipInput(Path("a"), 3)], width=640, height=360, title=None, template=load_template("default"))
    assert list(srt.parse(to_srt(timeline))) == []
    assert to_vtt(timeline).startswith("WEBVTT")
    assert webvtt.from_buffer(io.StringIO(to_vtt(timeline))).captions == []
