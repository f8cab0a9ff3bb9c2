"""`build_timeline` per output (issue 15 point 1): one timeline model per output size, the
MLS-unbranded cut without the logo, the agent card and any text naming the agent, and each clip's
focus point carried into the timeline for the reframing crop (pure, no ffmpeg)."""

from __future__ import annotations

from pathlib import Path

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.media.templates import load_template
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.model import ImageRole, TextRole

FACTS = ListingFacts(address="12 Oak Lane", price=1_250_000, beds=3, baths=2, sqft=1850, agent_name="Jane Doe")


def _clips(captions=(None, "{{agent_name}}'s pick", None)) -> list[ClipInput]:
    return [
        ClipInput(Path(f"/clips/c{i}.mp4"), 4.0, caption=c, room=f"Room {i}", focus=(0.25, 0.75) if i == 1 else None)
        for i, c in enumerate(captions)
    ]


def test_the_unbranded_cut_leaves_out_the_logo_the_agent_card_and_the_agent_name():
    template = load_template("showcase").model_copy(update={"logo": "soft_pad.m4a"})  # any bundled file: a logo is set
    branded = build_timeline(_clips(), width=1920, height=1080, title="By {{agent_name}}", template=template, facts=FACTS)
    unbranded = build_timeline(
        _clips(), width=1920, height=1080, title="By {{agent_name}}", template=template, facts=FACTS, branded=False
    )
    assert [i.role for i in branded.images] == [ImageRole.LOGO] and unbranded.images == []
    roles = {t.role: t.text for t in branded.texts if t.role != TextRole.CAPTION}
    assert roles[TextRole.OUTRO] == "Listed by Jane Doe" and roles[TextRole.TITLE] == "By Jane Doe"
    assert not any("Jane Doe" in t.text for t in unbranded.texts)
    assert {t.role for t in unbranded.texts} == {TextRole.INTRO, TextRole.LOWER_THIRD, TextRole.CAPTION}
    captions = [t.text for t in unbranded.texts if t.role == TextRole.CAPTION]
    assert captions == ["Room 0", "Room 1", "Room 2"]  # the agent's caption falls back to the room name
    assert "Jane Doe's pick" in [t.text for t in branded.texts]
    # the same clips and timing: only what brands the video differs
    assert unbranded.clips == branded.clips and unbranded.total_frames == branded.total_frames
    assert unbranded.audio == branded.audio


def test_one_timeline_per_output_size_with_each_clips_focus_point():
    template = load_template("default")
    sizes = [(1920, 1080), (1080, 1920), (1080, 1080), (1080, 1350), (1280, 720)]
    timelines = [build_timeline(_clips((None,) * 3), width=w, height=h, title="12 Oak Lane", template=template) for w, h in sizes]
    assert [(t.width, t.height) for t in timelines] == sizes
    assert len({t.total_frames for t in timelines}) == 1
    focus = [(c.focus_x, c.focus_y) for c in timelines[1].clips]
    assert focus == [(0.5, 0.5), (0.25, 0.75), (0.5, 0.5)]
