"""Subtitle sidecars of a timeline (issue 14 point 3): every timed text element (title, captions,
the template's texts) as SubRip (`.srt`) and WebVTT (`.vtt`) cues, frames turned into timestamps
exactly (pure: text in, text out)."""

from __future__ import annotations

from dataclasses import dataclass

from zencourt_pipeline.media.timeline.model import TextElement, Timeline


@dataclass(frozen=True)
class Cue:
    """One subtitle: [start_ms, end_ms) and its text."""

    start_ms: int
    end_ms: int
    text: str


def frame_ms(frame: int, fps: int) -> int:
    """The time of `frame` at `fps` in whole milliseconds (rounded to the nearest)."""
    return (frame * 1000 * 2 + fps) // (fps * 2)


def cues(timeline: Timeline) -> list[Cue]:
    """The timeline's texts as cues, in order of start (then of the timeline's order)."""
    ordered: list[TextElement] = sorted(timeline.texts, key=lambda t: t.start_frame)
    return [Cue(frame_ms(t.start_frame, timeline.fps), frame_ms(t.end_frame, timeline.fps), t.text) for t in ordered]


def _stamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _clean(text: str) -> str:
    """One cue's text: no blank line inside (it would end the cue), no `-->`."""
    return " ".join(text.split()).replace("-->", "->")


def to_srt(timeline: Timeline) -> str:
    """The timeline's texts as a SubRip file."""
    blocks = [
        f"{n}\n{_stamp(c.start_ms, ',')} --> {_stamp(c.end_ms, ',')}\n{_clean(c.text)}\n"
        for n, c in enumerate(cues(timeline), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(timeline: Timeline) -> str:
    """The timeline's texts as a WebVTT file (`<`, `>` and `&` escaped)."""
    blocks = ["WEBVTT\n"]
    for n, c in enumerate(cues(timeline), start=1):
        text = _clean(c.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        blocks.append(f"{n}\n{_stamp(c.start_ms, '.')} --> {_stamp(c.end_ms, '.')}\n{text}\n")
    return "\n".join(blocks)
