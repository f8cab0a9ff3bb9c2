"""Bundled composition templates and the generated music bed."""

from __future__ import annotations

import json
import subprocess

import pytest
from pydantic import ValidationError

from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe
from zencourt_pipeline.media.templates import TEMPLATES_DIR, Template, load_template, template_names
from zencourt_pipeline.media.transitions import XFADE_TRANSITIONS


def test_template_names():
    names = template_names()
    assert names == sorted(names)
    assert {"default", "modern", "classic"} <= set(names)


def test_none_loads_default():
    assert load_template(None) == load_template("default")
    assert load_template(None).name == "default"


def test_unknown_template_is_invalid_input():
    with pytest.raises(MediaError) as err:
        load_template("x")
    assert err.value.code == "INVALID_INPUT"
    assert err.value.message.startswith("unknown template 'x' (known: ")
    assert "default" in err.value.message and "classic" in err.value.message


@pytest.mark.parametrize("name", ["default", "modern", "classic"])
def test_every_bundled_template_is_valid(name):
    template = load_template(name)
    assert template.name == name
    assert template.description
    assert template.transition in XFADE_TRANSITIONS
    assert 0.2 <= template.transition_seconds <= 1.5
    # Transitions on whole frames at 30 fps keep the planned duration exact.
    assert abs(template.transition_seconds * 30 - round(template.transition_seconds * 30)) < 1e-9
    if template.music:
        assert template.music_path.is_file()
    style = template.text_style()
    assert style.font_color == template.font_color


def test_shipped_template_choices():
    default, modern, classic = (load_template(n) for n in ("default", "modern", "classic"))
    assert (default.transition, default.transition_seconds) == ("fade", 0.5)
    assert default.caption_seconds > 0
    assert modern.transition == "smoothleft" and modern.music
    assert (classic.transition, classic.transition_seconds) == ("fadeblack", 0.8)
    assert classic.end_card_seconds > 0


def test_music_bed_is_small_generated_aac():
    music = TEMPLATES_DIR / "soft_pad.m4a"
    assert music.is_file()
    assert music.stat().st_size < 500_000
    report = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(music)], capture_output=True, text=True
    ).stderr
    assert "Audio: aac" in report
    duration = report.split("Duration: ")[1].split(",")[0]
    h, m, s = duration.split(":")
    assert 30 <= int(h) * 3600 + int(m) * 60 + float(s) <= 60
    assert (TEMPLATES_DIR / "make_music.py").is_file()
    assert "CC0" in (TEMPLATES_DIR / "make_music.py").read_text()


def test_template_json_files_match_model_fields():
    fields = set(Template.model_fields)
    for path in TEMPLATES_DIR.glob("*.json"):
        data = json.loads(path.read_text())
        assert set(data) <= fields, path.name
        assert data["name"] == path.stem


@pytest.mark.parametrize(
    "override",
    [
        {"transition": "spin"},
        {"transition_seconds": 0.1},
        {"transition_seconds": 2.0},
        {"font_color": "white"},
        {"background_opacity": 1.5},
        {"music": "../etc/passwd"},
        {"music": "missing.m4a"},
        {"name": "Bad Name"},
        {"unexpected": 1},
    ],
)
def test_invalid_template_data_is_rejected(override):
    with pytest.raises(ValidationError):
        Template.model_validate({"name": "t", **override})


def test_defaults():
    template = Template(name="plain")
    assert template.transition == "fade"
    assert template.transition_seconds == 0.5
    assert template.title_seconds == 3.0
    assert template.music is None and template.music_path is None
    assert template.end_card_seconds == 0
