"""Stills + narration -> MP4, offline (issue 14 point 4): the local generator's Ken Burns clips
timed to the voice.

The narration is checked and analyzed (`narration.analyze_narration`: its speech spans by silence
detection), each photo gets a length so that the video lasts the narration (plus its tail) and
every crossfade falls in a pause of the voice (`timeline.narration.clip_durations`), the photos are
rendered as Ken Burns clips of exactly those lengths (`kenburns.render_ken_burns`, the local
generator's renderer) and composed with the narration (`compose.compose_video`: the music ducked
under the voice, the mix at -14 LUFS). No network, no provider: what `make demo`'s local generator
does for a batch, for a voice-over.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.media.compose import ClipInput, CompositionResult, compose_video
from zencourt_pipeline.media.kenburns import choose_motion, render_ken_burns
from zencourt_pipeline.media.narration import analyze_narration
from zencourt_pipeline.media.templates import Template
from zencourt_pipeline.media.timeline.narration import clip_durations


def narrated_slideshow(
    photos: Sequence[Path], narration: Path, dest: Path, *, width: int, height: int, template: Template,
    work_dir: Path, rooms: Sequence[str | None] | None = None, title: str | None = None,
    facts: ListingFacts | None = None, preset: str = "veryfast",
) -> CompositionResult:
    """`photos`, in order, as Ken Burns clips timed to the `narration` file's pauses, composed with
    it into an MP4 at `dest` (MediaError with the narration's code when the file is unusable)."""
    voice = analyze_narration(Path(narration))
    lengths = clip_durations(voice.speech, voice.duration_s, len(photos), transition_s=template.transition_seconds)
    rooms = list(rooms) if rooms is not None else [None] * len(photos)
    work_dir = Path(work_dir)
    clips = []
    for i, (photo, seconds, room) in enumerate(zip(photos, lengths, rooms, strict=True)):
        clip = work_dir / f"kenburns-{i:02d}.mp4"
        render_ken_burns(Path(photo), clip, width=width, height=height, duration_s=seconds,
                         motion=choose_motion(i, room), preset=preset)  # fmt: skip
        clips.append(ClipInput(clip, seconds, room=room))
    return compose_video(
        clips, dest, width=width, height=height, title=title, template=template, facts=facts, narration=voice,
        work_dir=work_dir / "compose", preset=preset,
    )  # fmt: skip
