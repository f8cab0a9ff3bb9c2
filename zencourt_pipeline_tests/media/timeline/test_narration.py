"""A narration on the timeline (issue 14 point 4), pure: its track, the music's ducking as gain
automation, the last clip held for a narration longer than the clips up to the bound and
NARRATION_TOO_LONG beyond it, and the MLS-unbranded cut without a voice that names the agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.model import AudioKind, Timeline
from zencourt_pipeline.media.timeline.narration import (
    DUCK_DB,
    NARRATION_MAX_HOLD_S,
    NARRATION_TAIL_S,
    VOICE_LUFS,
    Narration,
    duck_points,
    speech_spans,
)

TEMPLATE = Template(name="listing", music="soft_pad.m4a", music_volume=0.5, title_seconds=0.0, caption_seconds=0.0)
CLIPS = [ClipInput(Path(f"/clips/c{i}.mp4"), 3.0, room=f"Room {i}") for i in range(3)]  # 3 x 90 - 2 x 15 = 240 frames


def _build(narration: Narration | None, *, branded: bool = True) -> Timeline:
    return build_timeline(
        CLIPS, width=640, height=360, title=None, template=TEMPLATE, branded=branded, narration=narration
    )


def test_a_narration_shorter_than_the_clips_is_a_track_and_ducks_the_music():
    voice = Narration("/n/voice.m4a", 6.0, speech=((0.5, 2.0), (2.4, 3.0), (4.5, 5.8)), loudness_lufs=-22.0)
    plain, narrated = _build(None), _build(voice)
    assert narrated.clips == plain.clips and narrated.total_frames == plain.total_frames == 240
    track = narrated.narration
    assert track is not None and track.kind == AudioKind.NARRATION and not track.loop
    assert track.source == "/n/voice.m4a" and [p.db for p in track.gain] == [VOICE_LUFS + 22.0]
    music = narrated.music
    base = plain.music.gain[0].db
    # two ducked spans: 0.5-3.0 (the 0.4 s pause is bridged) and 4.5-5.8, ramps before and after
    assert [(p.frame, round(p.db, 2)) for p in music.gain] == [
        (0, round(base, 2)), (9, round(base, 2)), (15, round(base - DUCK_DB, 2)), (90, round(base - DUCK_DB, 2)),
        (108, round(base, 2)), (129, round(base, 2)), (135, round(base - DUCK_DB, 2)), (174, round(base - DUCK_DB, 2)),
        (192, round(base, 2)),
    ]  # fmt: skip
    assert Timeline.from_json(narrated.to_json()) == narrated  # the ducking is data in the stored timeline


def test_a_narration_longer_than_the_clips_holds_the_last_clip_up_to_the_bound():
    natural = 240 / 30
    held = _build(Narration("/n/voice.m4a", natural + 3.0))
    assert [c.out_frame for c in held.clips] == [90, 90, 90 + round((3.0 + NARRATION_TAIL_S) * 30)]
    assert held.total_frames == round((natural + 3.0 + NARRATION_TAIL_S) * 30)
    assert held.music.fade_out_frames <= held.total_frames and held.music.gain[-1].frame <= held.total_frames
    at_bound = _build(Narration("/n/voice.m4a", natural + NARRATION_MAX_HOLD_S - NARRATION_TAIL_S))
    assert at_bound.total_frames == 240 + NARRATION_MAX_HOLD_S * 30
    with pytest.raises(MediaError) as raised:
        _build(Narration("/n/voice.m4a", natural + NARRATION_MAX_HOLD_S))
    assert raised.value.code is ErrorCode.NARRATION_TOO_LONG
    assert "lasts 18.0 s" in raised.value.message and "held at most 10 s" in raised.value.message


def test_the_unbranded_cut_drops_a_narration_that_identifies_the_agent():
    naming = Narration("/n/voice.m4a", 10.0, speech=((0.5, 9.5),))
    unbranded = _build(naming, branded=False)
    assert unbranded.narration is None and len(unbranded.music.gain) == 1  # no voice, no ducking
    assert unbranded.total_frames == 240  # nor a held clip for it
    assert _build(naming).narration is not None
    neutral = Narration("/n/voice.m4a", 10.0, speech=((0.5, 9.5),), identifies_agent=False)
    assert _build(neutral, branded=False).narration is not None


def test_duck_points_stay_inside_the_timeline_and_increase():
    points = duck_points(-6.0, [(0.0, 1.0), (7.5, 9.0)], total=240, fps=30)
    frames = [p.frame for p in points]
    assert frames == sorted(set(frames)) and frames[-1] <= 240
    assert (points[0].frame, points[0].db) == (0, -6.0 - DUCK_DB)  # speech from the first frame: ducked at once
    assert (points[-1].frame, points[-1].db) == (225, -6.0 - DUCK_DB)  # speech to the end: ducked to the end
    assert speech_spans([(3.0, 4.0), (0.0, 1.0), (1.5, 2.0), (5.0, 5.0)]) == [(0.0, 2.0), (3.0, 4.0)]
