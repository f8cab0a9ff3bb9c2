"""The timeline model: JSON round trips, derived positions, validation errors (pure, no ffmpeg)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.templates import Template, load_template, template_names
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.model import (
    AudioKind,
    AudioTrack,
    Clip,
    Corner,
    EndCard,
    GainPoint,
    ImageElement,
    ImageRole,
    TextElement,
    TextPosition,
    TextRole,
    Timeline,
    Transition,
)
from zencourt_pipeline.media.transitions import TransitionKind

ROOMS = ["Living room", "Kitchen", None, "Deck"]


def _built(template: Template, durations=(5.0, 4.0, 3.0, 5.5), title: str | None = "12 Harbour View") -> Timeline:
    clips = [ClipInput(Path(f"/clips/c{i}.mp4"), d, ROOMS[i % 4]) for i, d in enumerate(durations)]
    return build_timeline(clips, width=1280, height=720, title=title, template=template)


def _hand_made() -> Timeline:
    """Every kind of element, per-clip transitions, in/out points, gain automation, narration."""
    return Timeline(
        width=720, height=1280, fps=30,
        clips=[
            Clip(source="s3://b/c0.mp4", in_frame=15, out_frame=165, transition=Transition(kind=TransitionKind.DISSOLVE, frames=20)),
            Clip(source="s3://b/c1.mp4", out_frame=90, transition=Transition(kind=TransitionKind.WIPELEFT, frames=10)),
        ],
        end_card=EndCard(duration_frames=45, title="Call Ana", subtitle="555 0100"),
        texts=[
            TextElement(role=TextRole.TITLE, text="12 Main St", start_frame=0, duration_frames=60, fade_frames=12,
                        position=TextPosition.CENTER_BAND),
            TextElement(role=TextRole.CAPTION, text="Kitchen", start_frame=140, duration_frames=45,
                        position=TextPosition.LOWER_LEFT),
        ],
        images=[ImageElement(role=ImageRole.AGENT_PHOTO, source="/x/ana.png", start_frame=210, duration_frames=45,
                             position=Corner.BOTTOM_LEFT, opacity=0.8)],
        audio=[
            AudioTrack(kind=AudioKind.MUSIC, source="/t/bed.m4a", loop=True,
                       gain=[GainPoint(frame=0, db=-4.4), GainPoint(frame=30, db=-16.0), GainPoint(frame=200, db=-4.4)],
                       fade_in_frames=15, fade_out_frames=30),
            AudioTrack(kind=AudioKind.NARRATION, source="/n/voice.m4a"),
        ],
        fade_in_frames=15, fade_out_frames=30,
    )  # fmt: skip


@pytest.mark.parametrize("name", template_names())
def test_built_timelines_round_trip(name):
    timeline = _built(load_template(name))
    text = timeline.to_json()
    again = Timeline.from_json(text)
    assert again == timeline and again.to_json() == text
    assert json.loads(text)["version"] == 1


def test_hand_made_timeline_round_trips_and_its_positions():
    timeline = _hand_made()
    text = timeline.to_json()
    assert Timeline.from_json(text).to_json() == text
    assert Timeline.from_json(text.encode()) == timeline
    assert [c.frames for c in timeline.clips] == [150, 90]
    assert timeline.clip_starts == [0, 130]
    assert timeline.card_start == 210 and timeline.total_frames == 265
    assert timeline.duration_s == pytest.approx(265 / 30) and timeline.seconds(45) == 1.5
    assert timeline.music is timeline.audio[0]


def test_built_timeline_in_frames():
    template = load_template("default").model_copy(update={"title_seconds": 2.0, "caption_seconds": 1.5})
    timeline = _built(template, durations=(5.0, 5.0, 5.0))
    assert [c.frames for c in timeline.clips] == [150, 150, 150]
    assert [c.transition.frames for c in timeline.clips[:-1]] == [15, 15] and timeline.clips[-1].transition is None
    assert timeline.clip_starts == [0, 135, 270] and timeline.total_frames == 420
    title, *captions = timeline.texts
    assert (title.role, title.start_frame, title.end_frame, title.fade_frames) == (TextRole.TITLE, 0, 60, 12)
    # the first caption follows the title; the others start once their clip dominates the crossfade
    assert [(c.text, c.start_frame, c.end_frame) for c in captions] == [("Living room", 60, 105), ("Kitchen", 143, 188)]
    assert (timeline.fade_in_frames, timeline.fade_out_frames) == (15, 30)
    music = timeline.music
    assert music is not None and music.loop and music.fade_out_frames == 30
    assert 10 ** (music.gain[0].db / 20) == pytest.approx(template.music_volume)


def test_building_renders_nothing(tmp_path):
    before = set(tmp_path.iterdir())
    timeline = _built(load_template("classic"))  # end card, no file written anywhere
    assert timeline.end_card is not None and timeline.clips[-1].transition is not None
    assert set(tmp_path.iterdir()) == before


def _with(**update) -> dict:
    data = json.loads(_hand_made().to_json())
    data.update(update)
    return data


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"version": 2}, "version"),
        ({"width": 721}, "output size must be even"),
        ({"clips": []}, "at least 1 item"),
        ({"end_card": None}, "the last clip has a transition exactly when an end card follows it"),
        ({"fade_out_frames": 1000}, "video fades are longer"),
        ({"texts": [{"role": "caption", "text": "x", "start_frame": 250, "duration_frames": 30, "position": "lower-left"}]},
         "text 0 ends at frame 280, after the timeline's 265 frames"),
        ({"texts": [{"role": "caption", "text": "x", "start_frame": 0, "duration_frames": 10, "fade_frames": 6,
                     "position": "lower-left"}]}, "fades of 6 frames do not fit in 10 frames"),
        ({"images": [{"role": "logo", "source": "l.png", "start_frame": -1, "duration_frames": 10}]}, "greater than or equal to 0"),
        ({"audio": [{"kind": "music", "source": "m", "gain": [{"frame": 10, "db": 0}, {"frame": 5, "db": 0}]}]},
         "strictly increasing"),
        ({"audio": [{"kind": "music", "source": "m", "gain": [{"frame": 900, "db": 0}]}]}, "reach past frame 265"),
        ({"audio": [{"kind": "music", "source": "a"}, {"kind": "music", "source": "b"}]}, "at most one music track"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_invalid_timelines_say_what_is_wrong(update, message):
    with pytest.raises(MediaError, match="invalid timeline") as caught:
        Timeline.from_json(json.dumps(_with(**update)))
    assert message in caught.value.message


def test_clips_must_cover_their_transitions():
    data = _with(texts=[], images=[], audio=[])
    data["clips"][1]["out_frame"] = 30  # 30 frames, 20 in + 10 out: all of it in transitions
    assert Timeline.model_validate(data).clips[1].frames == 30
    data["clips"][1]["out_frame"] = 29
    with pytest.raises(ValidationError, match="clip 1 has 29 frames: too short for its transitions"):
        Timeline.model_validate(data)
    with pytest.raises(ValidationError, match="out_frame 10 must be after in_frame 10"):
        Clip(source="a.mp4", in_frame=10, out_frame=10)
    with pytest.raises(ValidationError, match="hard cuts are not supported"):
        Timeline(width=64, height=64, clips=[Clip(source="a", out_frame=30), Clip(source="b", out_frame=30)])
    with pytest.raises(ValidationError, match="Input should be"):
        Transition.model_validate({"kind": "custom", "frames": 10})


def test_colours_are_one_rule_for_templates_texts_and_timelines():
    """`media.layout.HexColor`: templates, their own texts and the timeline's styles take
    `#RRGGBB` (kept upper case) and refuse anything else the same way."""
    import pytest
    from pydantic import BaseModel, ValidationError

    from zencourt_pipeline.media.layout import HexColor

    class Styled(BaseModel):
        color: HexColor

    assert Styled(color="#a1b2c3").color == "#A1B2C3"
    for bad in ("white", "#FFF", "#GGGGGG", "#1234567"):
        with pytest.raises(ValidationError, match="RRGGBB"):
            Styled(color=bad)
