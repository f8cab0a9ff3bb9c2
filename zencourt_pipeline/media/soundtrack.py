"""A timeline's audio made once: the mix (`mix.audio_chain`: the music bed ducked under the
narration), loudness-normalized in two passes (`loudness.measure_bed`, then `loudnorm` with that
measurement) and AAC-encoded into an .m4a that every render of a timeline with the same mix muxes
by stream copy (`RenderAssets.soundtrack`) instead of mixing, measuring and encoding it again.

The outputs of one request (16:9 and 9:16, branded and unbranded) usually share one mix: the audio
depends on the tracks and the timeline's length and rate, not on its size or overlays (`mix_key`).
`render_renditions` makes one soundtrack per distinct mix and passes it down; a render given none
measures and encodes its own (`compose.prepare`), as a single render always has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import loudness, mix
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.model import Timeline


@dataclass(frozen=True)
class Soundtrack:
    """The encoded audio of every timeline whose `mix_key` is `mix`, and its loudness measurement
    (`loudnorm`: the second pass's filter, as `RenderAssets.loudnorm`)."""

    path: Path
    loudnorm: str
    mix: str

    def fits(self, timeline: Timeline) -> bool:
        """Whether this is `timeline`'s audio (its mix is this one)."""
        return mix_key(timeline) == self.mix


def mix_key(timeline: Timeline) -> str | None:
    """What a timeline's audio depends on (its tracks, rate and length; None: no audio): timelines
    with the same key have the same soundtrack, whatever their size, overlays or branding."""
    if not timeline.audio:
        return None
    tracks = [track.model_dump(mode="json") for track in timeline.audio]
    return json.dumps({"fps": timeline.fps, "frames": timeline.total_frames, "tracks": tracks}, sort_keys=True)


def measure_mix(timeline: Timeline) -> str:
    """The first loudness pass over `timeline`'s whole mix: the second pass's `loudnorm` filter."""
    return loudness.measure_bed(mix.audio_inputs(timeline), mix.audio_chain(timeline, RenderAssets(), 0))


def make_soundtrack(timeline: Timeline, dest: Path) -> Soundtrack | None:
    """Mix, measure, normalize and encode `timeline`'s audio into `dest` (.m4a); None without audio."""
    key = mix_key(timeline)
    if key is None:
        return None
    loudnorm = measure_mix(timeline)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(mix.audio_args(timeline, RenderAssets(loudnorm=loudnorm), Path(dest)), code=ErrorCode.COMPOSITION_FAILED)
    return Soundtrack(Path(dest), loudnorm, key)
