"""Merge fields (issue 14 point 2): the batch's facts and each clip's caption in a template's texts,
fitted with the real font at the output size; unknown fields and text that cannot fit are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from zencourt_pipeline.domain import BatchRejected, ListingFacts, parse_facts
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.merge import Missing, clip_values, fact_values, merge, unknown_fields
from zencourt_pipeline.media.templates import Template, load_template, template_names
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.model import TextPosition, TextRole
from zencourt_pipeline.media.transitions import TransitionKind

FACTS = ListingFacts(address="12 Oak Lane, Springfield", price=1250000, beds=3, baths=2.5, sqft=1850, agent_name="Jane Doe")
CLIPS = [ClipInput(Path(f"job-{i}"), 5, room=room) for i, room in enumerate(["Kitchen", "Living room", "Primary bedroom"])]
SIZES = [(1280, 720), (720, 1280)]


def test_fact_values_are_formatted():
    values = fact_values(FACTS, "Home")
    assert values == {
        "address": "12 Oak Lane, Springfield", "price": "$1,250,000", "beds": "3", "baths": "2.5",
        "sqft": "1,850", "agent_name": "Jane Doe", "title": "Home",
    }  # fmt: skip
    assert fact_values(ListingFacts(price="Offers over $900k"))["price"] == "Offers over $900k"
    assert fact_values(ListingFacts()) == {}


def test_caption_falls_back_to_the_room():
    assert clip_values("Kitchen", None) == {"room": "Kitchen", "caption": "Kitchen"}
    assert clip_values("Kitchen", "Chef's kitchen") == {"room": "Kitchen", "caption": "Chef's kitchen"}
    assert clip_values(None, None) == {}


def test_merge_replaces_fields_and_names_unknown_and_missing_ones():
    values = fact_values(FACTS)
    assert merge("{{price}} · {{ beds }} bd", values, where="x") == "$1,250,000 · 3 bd"
    assert merge("{{ price }}", {"price": "{{beds}}"}, where="x") == "{{beds}}"  # values are not merged again
    with pytest.raises(MediaError, match=r"the title uses unknown merge field \{\{bathrooms\}\}") as err:
        merge("{{bathrooms}}", values, where="the title")
    assert err.value.code == "INVALID_INPUT"
    with pytest.raises(MediaError, match=r"uses \{\{price\}\}, which has no value"):
        merge("{{price}}", {}, where="the caption")
    assert merge("{{price}}", {}, where="x", missing=Missing.OMIT) is None
    assert unknown_fields("{{room}} {{nope}}", clip=False) == ["room", "nope"]


def test_facts_are_typed_and_unknown_keys_refused():
    assert parse_facts('{"agentName": "A", "price": 5}') == ListingFacts(agent_name="A", price=5)
    assert parse_facts(None) == ListingFacts()
    with pytest.raises(BatchRejected, match=r"facts\.bedrooms"):
        parse_facts('{"bedrooms": 3}')
    with pytest.raises(BatchRejected, match=r"facts\.sqft"):
        parse_facts('{"sqft": "big"}')
    assert ListingFacts.model_validate_json(FACTS.to_json()) == FACTS


def test_at_least_five_shipped_templates_that_look_different():
    names = template_names()
    assert {"default", "classic", "modern"} <= set(names) and len(names) >= 5
    looks = {
        name: (t.font_color, t.background_color, t.caption_position, t.title_position,
               tuple((x.role, x.position) for x in t.texts), tuple(t.transitions) or (t.transition,))
        for name in names for t in [load_template(name)]
    }  # fmt: skip
    assert len(set(looks.values())) == len(names)
    with_texts = [load_template(n) for n in names if load_template(n).texts]
    roles = {x.role for t in with_texts for x in t.texts}
    assert {TextRole.LOWER_THIRD, TextRole.INTRO, TextRole.OUTRO} <= roles
    assert any("{{price}}" in x.text and "{{beds}}" in x.text and "{{baths}}" in x.text for t in with_texts for x in t.texts)
    assert any(x.role == TextRole.INTRO and "{{address}}" in x.text for t in with_texts for x in t.texts)
    assert any(x.role == TextRole.OUTRO and "{{agent_name}}" in x.text for t in with_texts for x in t.texts)


@pytest.mark.parametrize("name", ["showcase", "luxury", "bold", "default", "classic", "modern"])
@pytest.mark.parametrize("size", SIZES)
def test_templates_merge_the_facts_into_the_timeline(name, size):
    template = load_template(name)
    timeline = build_timeline(CLIPS, width=size[0], height=size[1], title="Charming home", template=template, facts=FACTS)
    texts = {t.role: t for t in timeline.texts}
    assert [t.text for t in timeline.texts if t.role == TextRole.CAPTION] == ["Kitchen", "Living room", "Primary bedroom"]
    for spec in template.texts:
        element = texts[spec.role]
        assert "{{" not in element.text and element.position == spec.position
        assert element.end_frame <= timeline.total_frames
    if name == "showcase":
        assert texts[TextRole.LOWER_THIRD].text == "$1,250,000 · 3 bd · 2.5 ba · 1,850 sq ft"
        assert texts[TextRole.LOWER_THIRD].start_frame == 105  # 3.5 s at 30 fps
        assert texts[TextRole.INTRO].text == "12 Oak Lane, Springfield"
        assert texts[TextRole.OUTRO].text == "Listed by Jane Doe"
        assert texts[TextRole.OUTRO].end_frame == timeline.total_frames - 6  # 0.2 s before the end
        assert [c.transition.kind for c in timeline.clips[:-1]] == ["fade", "slideleft"]


def test_template_texts_without_their_facts_are_left_out():
    timeline = build_timeline(CLIPS, width=1280, height=720, title=None, template=load_template("showcase"),
                              facts=ListingFacts(address="1 Main St"))  # fmt: skip
    assert [t.role for t in timeline.texts if t.role not in (TextRole.CAPTION,)] == [TextRole.INTRO]


def test_job_caption_and_transition_override_the_template():
    clips = [ClipInput(Path("a"), 5, caption="{{beds}}-bed retreat", room="Bedroom", transition=TransitionKind.CIRCLEOPEN),
             ClipInput(Path("b"), 5, room="Garden")]  # fmt: skip
    timeline = build_timeline(clips, width=1280, height=720, title=None, template=load_template("default"), facts=FACTS)
    assert [t.text for t in timeline.texts] == ["3-bed retreat", "Garden"]
    assert timeline.clips[0].transition.kind == TransitionKind.CIRCLEOPEN


def test_title_may_use_facts_but_not_unknown_fields():
    timeline = build_timeline(CLIPS, width=1280, height=720, title="Just listed: {{address}}",
                              template=load_template("default"), facts=FACTS)  # fmt: skip
    assert timeline.texts[0].text == "Just listed: 12 Oak Lane, Springfield"
    with pytest.raises(MediaError, match=r"the title uses unknown merge field \{\{zip\}\}"):
        build_timeline(CLIPS, width=1280, height=720, title="{{zip}}", template=load_template("default"))


@pytest.mark.parametrize("size", SIZES)
def test_text_that_cannot_fit_is_an_error_not_an_ellipsis(size):
    facts = ListingFacts(address=("WWWWWWWWW " * 20)[:200])  # 2 lines even at 45% of the styled size: no
    with pytest.raises(MediaError) as err:
        build_timeline(CLIPS, width=size[0], height=size[1], title=None, template=load_template("showcase"), facts=facts)
    assert err.value.code == "INVALID_INPUT"
    assert "intro text ({{address}}) does not fit" in err.value.message and f"{size[0]}x{size[1]}" in err.value.message
    unbreakable = [ClipInput(Path("a"), 5, caption="W" * 200)]
    with pytest.raises(MediaError, match=r"the caption 'W+' \(\{\{caption\}\}\) does not fit"):
        build_timeline(unbreakable, width=size[0], height=size[1], title=None, template=load_template("default"))


def test_a_template_with_an_unknown_field_is_refused():
    body = {"name": "ws-1", "texts": [{"role": "outro", "text": "{{agent_phone}}", "position": "center-box"}]}
    with pytest.raises(ValidationError, match=r"unknown merge field \{\{agent_phone\}\}"):
        Template.model_validate(body)
    with pytest.raises(ValidationError, match=r"unknown merge field \{\{room\}\}"):
        Template.model_validate({"name": "ws-2", "title_text": "{{room}}"})  # no room outside a clip
    assert Template.model_validate({"name": "ws-3", "caption_text": "{{room}}: {{caption}}",
                                    "caption_position": TextPosition.UPPER_LEFT}).caption_position == "upper-left"  # fmt: skip


def test_problems_name_the_request_field_to_fix():
    from zencourt_pipeline.media.listing import ListingClip, listing_problem

    def problem(**kwargs):
        args = {"template": "showcase", "orientation": "vertical", "title": None, "facts": FACTS,
                "clips": [ListingClip("a", 5, room="Kitchen"), ListingClip("b", 5, room="Bath")], **kwargs}  # fmt: skip
        return listing_problem(**args)

    assert problem() is None
    assert problem(template="nope").field == "template"
    assert problem(title="{{zip}}").field == "title"
    assert problem(facts=ListingFacts(agent_name="W" * 120)).field == "facts.agent_name"
    assert problem(clips=[ListingClip("a", 5, room="Kitchen"), ListingClip("b", 5, caption="{{price}} {{nope}}")]).field == "jobs.1.caption"
    assert problem(clips=[ListingClip("a", 5, room="W" * 200)]).field == "jobs.0.room_name"
    assert problem(clips=[ListingClip("a", 5, transition="spin")]).field == "jobs.0.transition"
