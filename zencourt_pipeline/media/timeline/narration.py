"""A voice-over on the timeline (issue 14 point 4), pure: what a narration does to the timeline.

* It is an `AudioTrack` of kind `narration` from frame 0, its gain bringing the voice to
  `VOICE_LUFS` (the whole mix is then normalized to the delivery loudness, `loudness.py`).
* The music is ducked under it by gain automation from the voice's envelope: the speech spans
  (`media.narration.analyze_narration`, silence detection) become gain points on the music track,
  `DUCK_DB` down from `DUCK_ATTACK_S` before the voice to its end, back up over `DUCK_RELEASE_S`;
  pauses shorter than `DUCK_BRIDGE_S` stay ducked (no pumping between sentences). The ducking is
  data in the timeline JSON, rendered by `mix.gain_filter` like any automation.
* A narration longer than the clips holds the last clip (its last frame) until the voice has ended
  plus `NARRATION_TAIL_S`, by at most `NARRATION_MAX_HOLD_S`; beyond it the timeline cannot be
  built: `MediaError(NARRATION_TOO_LONG)`.
* `identifies_agent` (the batch's `narrationIdentifiesAgent`, default true): the MLS-unbranded cut
  has no voice that names the agent (issue 15 point 3), so it leaves such a narration out.
* Stills timed to the voice (`clip_durations`, used by `media.slideshow`): each clip's length so
  the video lasts the narration and every crossfade falls in a pause of the voice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.timeline.model import AudioKind, AudioTrack, GainPoint

NARRATION_MAX_HOLD_S = 10.0  # the longest the last clip is held for a narration longer than the clips
NARRATION_TAIL_S = 0.5  # the music plays on this long after the voice ends
VOICE_LUFS = -16.0  # the voice's level in the mix before the mix is normalized
DUCK_DB = 15.0  # how far the music goes down under the voice (the measured figure must reach 10 dB)
DUCK_ATTACK_S = 0.2  # the music starts going down this long before the voice
DUCK_RELEASE_S = 0.6  # and comes back up over this long after it
DUCK_BRIDGE_S = 1.0  # a pause shorter than this stays ducked
_GAIN_LIMITS_DB = (-30.0, 24.0)


@dataclass(frozen=True)
class Narration:
    """A narration file as the timeline needs it: its path, length, speech spans (seconds from its
    start), integrated loudness (None: unmeasured, the voice keeps its level) and whether it names
    the agent (then the unbranded cut leaves it out)."""

    source: str
    duration_s: float
    speech: tuple[tuple[float, float], ...] = ()
    loudness_lufs: float | None = None
    identifies_agent: bool = True

    def in_cut(self, branded: bool) -> bool:
        """Whether this narration is heard in a cut (`branded` False: the MLS-unbranded one)."""
        return branded or not self.identifies_agent


def _frames(seconds: float, fps: int) -> int:
    return round(seconds * fps)


def narration_frames(narration: Narration, fps: int) -> int:
    """How long the video must be for the narration: the voice and the music's tail after it."""
    return _frames(narration.duration_s + NARRATION_TAIL_S, fps)


def hold_frames(natural_total: int, narration: Narration | None, fps: int) -> int:
    """How many frames the last clip is held so the narration fits (0: it fits already);
    MediaError(NARRATION_TOO_LONG) when that would be more than `NARRATION_MAX_HOLD_S`."""
    if narration is None:
        return 0
    extra = max(0, narration_frames(narration, fps) - natural_total)
    if extra > _frames(NARRATION_MAX_HOLD_S, fps):
        raise MediaError(
            ErrorCode.NARRATION_TOO_LONG,
            f"the narration lasts {narration.duration_s:.1f} s; the clips make {natural_total / fps:.1f} s "
            f"and the last clip is held at most {NARRATION_MAX_HOLD_S:g} s (add clips or shorten the narration)",
        )
    return extra


def narration_track(narration: Narration, total: int, fps: int) -> AudioTrack:
    """The voice-over track: from frame 0, at `VOICE_LUFS` (its gain from its measured loudness)."""
    gain = 0.0
    if narration.loudness_lufs is not None and narration.loudness_lufs > -70:
        low, high = _GAIN_LIMITS_DB
        gain = round(min(high, max(low, VOICE_LUFS - narration.loudness_lufs)), 2)
    return AudioTrack(kind=AudioKind.NARRATION, source=narration.source, gain=[GainPoint(frame=0, db=gain)])


def speech_spans(speech: Sequence[tuple[float, float]], bridge_s: float = DUCK_BRIDGE_S) -> list[tuple[float, float]]:
    """The speech spans sorted, those separated by less than `bridge_s` merged."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(speech):
        if end <= start:
            continue
        if merged and start - merged[-1][1] < bridge_s:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def duck_points(base_db: float, speech: Sequence[tuple[float, float]], total: int, fps: int) -> list[GainPoint]:
    """The music's gain automation: `base_db`, `DUCK_DB` lower under each speech span (ramps of
    `DUCK_ATTACK_S` before and `DUCK_RELEASE_S` after), every point within the timeline's frames."""
    low = max(-120.0, base_db - DUCK_DB)
    points = [GainPoint(frame=0, db=base_db)]

    def add(frame: int, db: float) -> None:  # after the end: dropped (the gain after the last point holds)
        frame = max(frame, 0)
        if frame > total:
            return
        if frame > points[-1].frame:
            points.append(GainPoint(frame=frame, db=db))
        elif frame == points[-1].frame:
            points[-1] = GainPoint(frame=frame, db=db)

    for start, end in speech_spans(speech):
        if _frames(start, fps) >= total:
            break
        add(_frames(start - DUCK_ATTACK_S, fps), base_db)
        add(_frames(start, fps), low)
        add(_frames(end, fps), low)
        add(_frames(end + DUCK_RELEASE_S, fps), base_db)
    return points


# ---------------------------------------------------------------- clips timed to the narration (stills + voice)

CLIP_MIN_S = 2.0  # what a Ken Burns clip timed to a narration lasts at least
CLIP_MAX_S = 10.0  # and at most


def pauses(speech: Sequence[tuple[float, float]], duration_s: float) -> list[tuple[float, float]]:
    """The gaps between the (bridged) speech spans, where a cut to the next clip does not interrupt a sentence."""
    spans = speech_spans(speech, bridge_s=0.0)
    return [(a_end, b_start) for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False) if b_start < duration_s]


def clip_durations(
    speech: Sequence[tuple[float, float]], duration_s: float, clips: int, *, transition_s: float, fps: int = 30,
    min_s: float = CLIP_MIN_S, max_s: float = CLIP_MAX_S,
) -> list[float]:
    """Seconds for each of `clips` clips so the video lasts the narration plus `NARRATION_TAIL_S` and
    the middle of each crossfade falls in a pause of the voice: each cut goes to the pause whose
    middle is nearest the even share, within half a share, when the clips on either side keep
    `min_s`..`max_s`; else the cut stays on the even share. Whole frames at `fps`."""
    if clips < 1:
        raise ValueError("no clips to time")
    length = duration_s + NARRATION_TAIL_S
    share = length / clips
    middles = [(a + b) / 2 for a, b in pauses(speech, duration_s)]
    cuts: list[float] = []  # output times of the crossfades' middles
    for k in range(1, clips):
        even = k * share
        before = cuts[-1] if cuts else 0.0
        fits = [m for m in middles if abs(m - even) <= share / 2 and m - before >= min_s and length - m >= min_s * (clips - k)]
        cuts.append(min(fits, key=lambda m: abs(m - even)) if fits else even)
    # in whole frames: clip k starts half a transition before its cut, the last one ends at `length`
    t = _frames(transition_s, fps) if clips > 1 else 0
    starts = [0, *(_frames(cut, fps) - t // 2 for cut in cuts)]
    ends = [start + t for start in starts[1:]] + [_frames(length, fps)]
    low, high = _frames(min_s, fps), _frames(max_s, fps)
    return [min(max(end - start, low), high) / fps for start, end in zip(starts, ends, strict=True)]
