"""Stills + narration -> MP4 offline (issue 14 point 4): Ken Burns clips timed to the voice's
pauses (`clip_durations`, pure) and the whole flow (`narrated_slideshow`) on three photos and a
voice with two pauses: the video lasts the narration plus its tail, no clip is held, and every
crossfade falls in a pause."""

from __future__ import annotations

import pytest

from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.media.slideshow import narrated_slideshow
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.timeline.narration import NARRATION_TAIL_S, clip_durations, pauses
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.media.test_narration import KINDS, make_voice

SPEECH = ((0.3, 2.8), (3.6, 6.0), (6.9, 9.5))  # pauses 2.8-3.6 and 6.0-6.9
VOICE_S = 10.0


def test_cuts_go_to_the_pauses_nearest_the_even_shares():
    frames = [round(s * 30) for s in clip_durations(SPEECH, VOICE_S, 3, transition_s=0.5)]
    assert frames == [104, 113, 128]  # cuts (crossfade middles) at 96.5 and 194.5 frames: the pauses' middles
    assert sum(frames) - 2 * 15 == (VOICE_S + NARRATION_TAIL_S) * 30  # the video lasts the narration and its tail
    even = [round(s * 30) for s in clip_durations((), VOICE_S, 3, transition_s=0.5)]  # no pause: even shares
    assert even == [113, 120, 112] and sum(even) - 30 == 315
    # a pause too far from the even share is not used; one clip takes the whole narration (bounded)
    assert [round(s * 30) for s in clip_durations(((0.0, 0.5), (1.0, 10.0)), VOICE_S, 2, transition_s=0.5)] == [166, 164]
    assert clip_durations(SPEECH, 30.0, 1, transition_s=0.5) == [10.0]
    assert pauses(SPEECH, VOICE_S) == [(2.8, 3.6), (6.0, 6.9)]


@pytest.mark.parametrize("size", [(320, 180)])
def test_stills_and_a_narration_become_a_video_cut_in_the_pauses(tmp_path, size):
    width, height = size
    photos = [write_photo(tmp_path / f"p{i}.jpg", size=(480, 320), seed=i) for i in range(3)]
    voice = make_voice(tmp_path / "voice.mp3", codec=KINDS["mp3"], seconds=VOICE_S, speech=SPEECH)
    template = Template(name="stills", music="soft_pad.m4a", title_seconds=0.0, caption_seconds=0.0, transition_seconds=0.5)
    result = narrated_slideshow(photos, voice, tmp_path / "tour.mp4", width=width, height=height, template=template,
                                work_dir=tmp_path / "work", rooms=["Entry", "Kitchen", "Deck"], preset="ultrafast")  # fmt: skip
    timeline = result.timeline
    assert timeline.narration is not None
    assert timeline.total_frames == round((VOICE_S + NARRATION_TAIL_S) * 30)
    assert [c.out_frame for c in timeline.clips] == [104, 113, 128]  # as timed: nothing held
    gaps = [(2.8, 3.6), (6.0, 6.9)]
    for k in range(1, 3):
        middle = (timeline.clip_starts[k] + timeline.clips[k - 1].transition.frames / 2) / 30
        assert any(a - 0.1 <= middle <= b + 0.1 for a, b in gaps), (k, middle)
    info = probe(result.path, count_frames=True)
    assert info.frame_count == timeline.total_frames and info.has_audio
