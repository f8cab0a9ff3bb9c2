"""The template applies a branding profile (issue 15 point 3) in bounded windows: the logo bug from
the start, an end card naming the agent in the brand colours, the logo and the contact line over
it; the unbranded cut has an end card of the same length without any of it (pure, no ffmpeg)."""

from __future__ import annotations

from pathlib import Path

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.media.branding import Branding
from zencourt_pipeline.media.templates import load_template
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.model import ImageRole, TextRole

FACTS = ListingFacts(address="12 Oak Lane", price=1_250_000, beds=3, baths=2, sqft=1850)
BRANDING = Branding(
    agent_name="Jane Doe", brokerage="Acme Realty", phone="555-0100", email="jane@acme.example",
    website="acme.example", logo=Path("/brand/logo.png"), primary_color="#123456", text_color="#FEDCBA",
)  # fmt: skip
AGENT = ("Jane Doe", "Acme Realty", "555-0100", "jane@acme.example", "acme.example", "/brand/logo.png")


def _clips(n: int = 3) -> list[ClipInput]:
    return [ClipInput(Path(f"/clips/c{i}.mp4"), 5.0, room=f"Room {i}") for i in range(n)]


def _build(template="default", branded=True, branding=BRANDING, **kw):
    template = load_template(template) if isinstance(template, str) else template
    return build_timeline(
        _clips(), width=1920, height=1080, title="Harbour View", template=template, facts=FACTS, branded=branded,
        branding=branding, **kw,
    )  # fmt: skip


def test_the_branded_cut_has_the_logo_bug_the_agent_end_card_and_the_contact_line_in_bounded_windows():
    tl = _build()
    card_start, total, fps = tl.card_start, tl.total_frames, tl.fps
    assert tl.end_card is not None and tl.end_card.duration_frames == round(2.5 * fps)  # brand_card_seconds: 2.5
    assert (tl.end_card.title, tl.end_card.subtitle) == ("Jane Doe", "Acme Realty")
    assert (tl.end_card.style.background_color, tl.end_card.style.font_color) == ("#123456", "#FEDCBA")
    shown = card_start + tl.clips[-1].transition.frames
    assert [(i.role, i.source, i.start_frame, i.end_frame) for i in tl.images] == [
        (ImageRole.LOGO, "/brand/logo.png", 0, 3 * fps), (ImageRole.LOGO, "/brand/logo.png", shown, total),
    ]  # fmt: skip
    [contact] = [t for t in tl.texts if t.role == TextRole.CONTACT]
    assert contact.text == "555-0100  ·  jane@acme.example  ·  acme.example"
    assert (contact.start_frame, contact.end_frame, contact.style.background_color) == (shown, total, "#123456")
    # nothing of the branding between the bug and the card
    branding = [*tl.images, contact]
    assert all(e.end_frame <= 3 * fps or e.start_frame >= card_start for e in branding)


def test_the_unbranded_cut_has_none_of_it_and_the_same_length():
    branded, unbranded = _build(), _build(branded=False)
    assert unbranded.images == [] and not [t for t in unbranded.texts if t.role == TextRole.CONTACT]
    assert unbranded.total_frames == branded.total_frames and unbranded.clips == branded.clips
    assert unbranded.end_card is not None and unbranded.end_card.title == "Harbour View"
    assert unbranded.end_card.style.background_color == "#000000"  # the template's, not the brand's
    text = unbranded.to_json()
    assert not [value for value in AGENT if value in text]
    assert unbranded.audio == branded.audio  # the default music identifies no one


def test_music_marked_agent_identifying_is_left_out_of_the_unbranded_cut_only():
    theme = load_template("default").model_copy(update={"music_identifies_agent": True})
    assert _build(theme).music is not None and _build(theme, branded=False).music is None


def test_the_profile_fills_merge_fields_the_unbranded_cut_leaves_out():
    template = load_template("showcase").model_copy(update={"caption_text": "{{caption}}"})
    clips = [ClipInput(Path("/c0.mp4"), 5.0, caption="Call {{phone}}", room="Kitchen"), *_clips(2)]
    kw = {"width": 1920, "height": 1080, "title": None, "template": template, "facts": FACTS, "branding": BRANDING}
    branded = build_timeline(clips, **kw)
    unbranded = build_timeline(clips, branded=False, **kw)
    assert "Call 555-0100" in [t.text for t in branded.texts]
    assert "Listed by Jane Doe" in [t.text for t in branded.texts]  # facts without an agent: the profile's
    assert [t.text for t in unbranded.texts if t.role == TextRole.CAPTION][0] == "Kitchen"
    assert not [value for value in AGENT if value in unbranded.to_json()]


def test_without_a_profile_nothing_changes():
    plain = _build(branding=None)
    assert plain.end_card is None and plain.images == [] and plain == _build(branding=Branding(primary_color="#FFFFFF"))
    assert _build(branding=None, branded=False) == _build(branding=None, branded=True)  # the unbranded cut is a copy
    classic = _build("classic", branding=BRANDING)
    assert classic.end_card.duration_frames == round(2.5 * 30)  # a template's own card keeps its length
