"""Golden graphs (issue 14 point 7): for three canonical timelines, the timeline itself and the
complete ffmpeg argument list of its composition are compared to checked-in files under
`golden/` (no substring matching: any change to a graph shows up in review as a diff).

Regenerate after an intended change with
`ZENCOURT_UPDATE_GOLDEN=1 .venv/bin/pytest zencourt_pipeline_tests/media/test_golden_graphs.py`
and review the diff of `golden/`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zencourt_pipeline.media import graphs, loudness
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.timeline.assets import Layer, RenderAssets
from zencourt_pipeline.media.timeline.build import ClipInput, build_timeline
from zencourt_pipeline.media.timeline.model import Corner, ImageElement, ImageRole, Timeline
from zencourt_pipeline.media.timeline.narration import Narration

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ZENCOURT_UPDATE_GOLDEN") == "1"
# A fixed first-pass measurement, so the music chain's loudnorm is part of the golden graph.
LOUDNORM = loudness.second_pass_filter(
    {"input_i": "-20.71", "input_tp": "-6.52", "input_lra": "1.90", "input_thresh": "-30.83", "target_offset": "0.12"}
)


def _portable(timeline: Timeline, **update) -> Timeline:
    """The timeline with machine-independent file names (the bundled music is an absolute path)."""
    data = timeline.model_dump(mode="json")
    for track in data["audio"]:
        if track["kind"] == "music":
            track["source"] = f"templates/{Path(track['source']).name}"
    data.update(update)
    return Timeline.model_validate(data)


def _assets(timeline: Timeline, **kw) -> RenderAssets:
    """Overlay PNGs where `timeline.assets` would write them, at fixed positions (no font involved)."""
    names = [f"work/text_{k:03d}.png" for k in range(len(timeline.texts))]
    names += [f"work/image_{k:03d}.png" for k in range(len(timeline.images))]
    layers = tuple(Layer(Path(name), x=2 * k, y=100 + 2 * k) for k, name in enumerate(names))
    card = Path("work/end_card.png") if timeline.end_card is not None else None
    return RenderAssets(layers=layers, end_card=card, rescale=tuple(False for _ in timeline.clips), **kw)


def one_clip() -> tuple[Timeline, RenderAssets]:
    template = Template(name="plain", title_seconds=0.0, caption_seconds=0.0, music=None)
    timeline = build_timeline([ClipInput(Path("clips/c0.mp4"), 4.0)], width=1280, height=720, title=None,
                              template=template)  # fmt: skip
    return timeline, _assets(timeline)


def three_clips_title_captions_music() -> tuple[Timeline, RenderAssets]:
    template = Template(name="listing", transition="smoothleft", music="soft_pad.m4a", title_seconds=2.0,
                        caption_seconds=1.5, music_volume=0.5)  # fmt: skip
    clips = [ClipInput(Path(f"clips/c{i}.mp4"), d, room) for i, (d, room) in
             enumerate([(2.5, "Living room"), (3.0, "Kitchen"), (2.0, "Deck")])]  # fmt: skip
    timeline = _portable(build_timeline(clips, width=1280, height=720, title="12 Harbour View", template=template))
    return timeline, _assets(timeline, loudnorm=LOUDNORM)


def three_clips_title_captions_music_narration() -> tuple[Timeline, RenderAssets]:
    """The same three clips with a narration longer than them: the music ducked under its speech
    spans (gain automation), the voice at its level, the last clip held, the mix normalized."""
    template = Template(name="listing", transition="smoothleft", music="soft_pad.m4a", title_seconds=2.0,
                        caption_seconds=1.5, music_volume=0.5)  # fmt: skip
    clips = [ClipInput(Path(f"clips/c{i}.mp4"), d, room) for i, (d, room) in
             enumerate([(2.5, "Living room"), (3.0, "Kitchen"), (2.0, "Deck")])]  # fmt: skip
    voice = Narration("narration/voice.m4a", 7.4, speech=((0.4, 3.1), (3.5, 4.2), (5.6, 7.3)), loudness_lufs=-21.5)
    timeline = _portable(build_timeline(clips, width=1280, height=720, title="12 Harbour View", template=template,
                                        narration=voice))  # fmt: skip
    return timeline, _assets(timeline, loudnorm=LOUDNORM)


def end_card_logo_rescale() -> tuple[Timeline, RenderAssets]:
    template = Template(name="card", transition="fadeblack", transition_seconds=0.8, title_seconds=0.0,
                        caption_seconds=0.0, music=None, end_card_seconds=2.5, end_card_text="Call us")  # fmt: skip
    clips = [ClipInput(Path("clips/phone.mov"), 3.0, "Entry"), ClipInput(Path("clips/c1.mp4"), 3.0)]
    built = build_timeline(clips, width=720, height=1280, title="Loft 5", template=template)
    logo = ImageElement(role=ImageRole.LOGO, source="brand/logo.png", start_frame=0,
                        duration_frames=built.total_frames, position=Corner.BOTTOM_RIGHT, opacity=0.9)  # fmt: skip
    timeline = _portable(built, images=[logo.model_dump(mode="json")])
    assets = _assets(timeline)
    return timeline, RenderAssets(layers=assets.layers, end_card=assets.end_card, rescale=(True, False))


CASES = {
    f.__name__: f
    for f in (one_clip, three_clips_title_captions_music, three_clips_title_captions_music_narration, end_card_logo_rescale)
}


def _golden_args(args: list[str]) -> dict:
    """The argument list, with the filter graph split into its chains (readable diffs)."""
    k = args.index("-filter_complex") + 1
    return {"args": [*args[:k], "<filter_complex>", *args[k + 1 :]], "filter_complex": args[k].split(";\n")}


def _check(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path.name} is missing: run with ZENCOURT_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs (intended? regenerate, see the module)"


@pytest.mark.parametrize("name", CASES)
def test_golden_timeline_and_compose_arguments(name):
    timeline, assets = CASES[name]()
    _check(GOLDEN / f"{name}.timeline.json", timeline.to_json())
    args = graphs.compose_args(timeline, assets, Path("out/listing.mp4"))
    _check(GOLDEN / f"{name}.args.json", json.dumps(_golden_args(args), indent=1) + "\n")
    # The checked-in timeline is the one that renders to these arguments.
    stored = Timeline.from_json((GOLDEN / f"{name}.timeline.json").read_text(encoding="utf-8"))
    assert graphs.compose_args(stored, assets, Path("out/listing.mp4")) == args
